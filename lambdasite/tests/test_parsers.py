"""The API's JSON parser and the args rule (lambdasite/parsers.py): no input makes either recurse."""

from __future__ import annotations

import io

import pytest
from rest_framework.exceptions import ParseError

from lambdasite.parsers import (
    MAX_BODY_DEPTH,
    StrictJSONParser,
    args_problem,
    json_problem,
    qualifier_problem,
    too_deep,
)


def nested(levels: int, leaf=None) -> list:
    value = [] if leaf is None else [leaf]
    for _ in range(levels - 1):
        value = [value]
    return value


def parse(raw: bytes):
    return StrictJSONParser().parse(io.BytesIO(raw), "application/json", {})


@pytest.mark.parametrize("levels", [MAX_BODY_DEPTH + 1, 990, 1_000, 100_000])
def test_a_body_nested_too_deep_is_a_parse_error_before_decoding(levels):
    for raw in (b"[" * levels + b"]" * levels, b'{"a":' * levels + b"1" + b"}" * levels):
        assert too_deep(raw)
        with pytest.raises(ParseError, match="nested deeper"):
            parse(raw)


def test_brackets_inside_strings_do_not_count():
    raw = b'{"args": ["' + b"[" * 10_000 + b'"]}'
    assert not too_deep(raw)
    assert parse(raw) == {"args": ["[" * 10_000]}


def test_the_args_rule_walks_without_recursion():
    assert args_problem(nested(64)) is None
    assert args_problem(nested(63, leaf=1)) is None  # [1] is 2 deep: a scalar counts as a level
    assert "nested deeper than 64" in args_problem(nested(65))
    assert "nested deeper than 64" in args_problem(nested(64, leaf=1))
    assert "nested deeper than 64" in args_problem(nested(1_000_000))  # no RecursionError
    deep_object: dict = {}
    for _ in range(1_000_000):
        deep_object = {"a": deep_object}
    assert "nested" in json_problem(deep_object, max_depth=64)


@pytest.mark.parametrize(
    ("args", "word"),
    [
        ({"a": 1}, "JSON array"),
        ("[1]", "JSON array"),
        ([float("inf")], "finite"),
        ([{"x": [float("-inf")]}], "finite"),
        ([float("nan")], "finite"),
        (["a\x00b"], "NUL"),
        ([{"k\x00": 1}], "NUL"),
        (["\ud800"], "surrogate"),
        ([{"\udfff": 1}], "surrogate"),
        ([object()], "JSON values"),
        ([{1: 2}], "keys"),
    ],
)
def test_the_args_rule_refuses_what_cannot_be_stored(args, word):
    assert word in args_problem(args)


def test_the_args_rule_accepts_ordinary_json():
    assert args_problem([1, 2.5, -3, True, None, "é ✓", {"a": [1, {"b": "c"}]}, [], {}]) is None


@pytest.mark.parametrize("text", ["1", "12", "prod", "canary-2", "a_b", "Prod", "latest"])
def test_qualifiers_that_can_name_something(text):
    assert qualifier_problem(text) is None


@pytest.mark.parametrize("text", ["²", "1²", "٣", "a b", "pr.od", "x" * 65, "", "1\n"])
def test_qualifiers_that_cannot(text):
    assert qualifier_problem(text) is not None
