"""jobs.concurrency_key: the strict path subset, and the key it finds in args."""

from __future__ import annotations

import pytest

from jobs.concurrency_key import MAX_KEY_CHARS, KeyPathError, evaluate, label, parse


@pytest.mark.parametrize(
    "path, steps",
    [
        ("$[0]", (0,)),
        ("$[1]", (1,)),
        ("$[0].store_id", (0, "store_id")),
        ("$[0].a.b[2]", (0, "a", "b", 2)),
        ('$[0]["customer id"].region', (0, "customer id", "region")),
        ("$[0]['x']", (0, "x")),
    ],
)
def test_it_reads_the_subset(path, steps):
    assert parse(path) == steps


@pytest.mark.parametrize(
    "path",
    [
        "",
        "$",
        "store_id",
        "$.store_id",  # the args are a list: the first step is an index
        "$..store_id",
        "$[*]",
        "$[0].*",
        "$[-1]",
        "$[01]",
        "$[0][?(@.a)]",
        "$[0].store id",
        "$[0].",
        '$[0]["a\\"b"]',
        "$[0]" + ".a" * 8,  # nine steps
        "$[0]." + "a" * 300,
        " $[0]",
        "$[0] ",
        "$[1234567]",
    ],
)
def test_it_refuses_anything_else(path):
    with pytest.raises(KeyPathError):
        parse(path)


def test_it_refuses_what_is_not_text():
    with pytest.raises(KeyPathError):
        parse(None)


@pytest.mark.parametrize(
    "path, args, key",
    [
        ("$[0].store_id", [{"store_id": 42}], "42"),
        ("$[0].store_id", [{"store_id": "42"}], "42"),
        ("$[1]", ["x", "eu-west"], "eu-west"),
        ("$[0].a", [{"a": {"y": 1, "x": [True, None]}}], '{"x":[true,null],"y":1}'),
        ("$[0].a", [{"a": 1.5}], "1.5"),
        ("$[0].a", [{"a": None}], "null"),
        ("$[0].store_id", [{}], ""),  # found nothing: the empty key
        ("$[2]", [1], ""),
        ("$[0].a", ["not an object"], ""),
        ("$[0][0]", [{"0": "a dict is not a list"}], ""),
    ],
)
def test_it_finds_the_key(path, args, key):
    assert evaluate(parse(path), args) == key


def test_a_huge_key_is_its_hash():
    key = evaluate(parse("$[0]"), ["x" * 10_000])
    assert key.startswith("sha256:") and len(key) <= MAX_KEY_CHARS


def test_a_reason_names_the_key_by_its_last_name():
    assert label("$[0].store_id") == "store_id"
    assert label("$[1]") == "$[1]"
