"""The API's JSON parser: DRF's, plus clean 400s for input nested too deep to decode and for
text that is not Unicode (a lone UTF-16 surrogate escape such as ``"\\ud800"``), which no
database column or later encoder accepts; and the one rule for a JSON value the API stores
(``args``): bounded depth, finite numbers, storable strings."""

from __future__ import annotations

import json
import math
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from sandbox.jsonsafe import depth

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")

# A body nested deeper is refused before it is decoded: Python's decoder (and every later walk or
# encoder) recurses once per level, so a 2 KB body of brackets would otherwise end in RecursionError,
# whose outcome depends on how deep the stack already is. Well above what any field accepts.
MAX_BODY_DEPTH = 100
MAX_ARGS_DEPTH = 64


def too_deep(raw: bytes) -> bool:
    """Whether a JSON text nests deeper than MAX_BODY_DEPTH (cheap unless it holds many brackets)."""
    return raw.count(b"[") + raw.count(b"{") > MAX_BODY_DEPTH and depth(raw) > MAX_BODY_DEPTH


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if too_deep(raw):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_BODY_DEPTH} levels")
        try:
            data = super().parse(_Replay(raw), media_type, parser_context)
        except RecursionError:  # not reachable within MAX_BODY_DEPTH; kept as the last guard
            raise ParseError("JSON parse error - nested too deeply") from None
        if _SURROGATE_ESCAPE.search(raw):
            try:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise ParseError(
                    "JSON parse error - a string holds a lone UTF-16 surrogate, which is not Unicode"
                ) from None
        return data


class _Replay:
    """The body read once, handed to DRF's parser as a stream."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, *args) -> bytes:
        data, self._data = self._data, b""
        return data


def json_problem(value, *, max_depth: int) -> str | None:
    """Why ``value`` cannot be stored as jsonb and served back, or None.

    Walked with an explicit stack, never recursion, so no input can exhaust the interpreter's
    stack, and the walk stops at the first problem: nested deeper than ``max_depth`` (a scalar
    inside a list counts as a level, as ``[1]`` is 2 deep), a number that is not finite (``1e400``
    decodes as infinity, which JSON cannot carry), a string or key holding NUL or a lone surrogate
    (PostgreSQL refuses both), or a value that is not JSON at all."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > max_depth:
            return f"may not be nested deeper than {max_depth} levels"
        kind = type(item)
        if kind is list:
            stack.extend((child, level + 1) for child in item)
        elif kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    return "object keys must be strings"
                if _unstorable(key):
                    return "may not contain NUL characters or lone surrogates"
                stack.append((child, level + 1))
        elif kind is str:
            if _unstorable(item):
                return "may not contain NUL characters or lone surrogates"
        elif kind is float:
            if not math.isfinite(item):
                return "numbers must be finite (this one is out of range)"
        elif item is not None and kind not in (int, bool):
            return "must hold only JSON values"
    return None


def _unstorable(text: str) -> bool:
    return "\x00" in text or (not text.isascii() and _UNSTORABLE.search(text) is not None)


def args_problem(args) -> str | None:
    """Why ``args`` (a job's or an invocation's positional arguments) is refused, or None."""
    if type(args) is not list:
        return "must be a JSON array, e.g. [2, 3]"
    return json_problem(args, max_depth=MAX_ARGS_DEPTH)


# a worker pool's name (jobs.pools): here, below every app, so that a quota's allowed_pools is checked
# by the same rule as a placement
POOL_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
POOL_NAME_RULE = "a pool name is 1-32 characters: a lowercase letter, then lowercase letters, digits or '-'"


def pool_name_valid(name: object) -> bool:
    return isinstance(name, str) and bool(POOL_NAME_RE.match(name))


_QUALIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}")


def qualifier_problem(text: str) -> str | None:
    """Why ``text`` cannot name an alias or a version of a function, or None. ASCII only: ``"²"``
    is a digit to ``str.isdigit()`` but no version number ``int()`` can read."""
    if _QUALIFIER.fullmatch(text) is None:
        return "must be an alias name or a version number (ASCII letters, digits, - and _)"
    return None
