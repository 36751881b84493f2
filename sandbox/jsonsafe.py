"""Decoding what a job returns: bounded depth, finite numbers, storable strings.

The bytes of a result come from user code (it can write to its own result pipe),
so nothing about them is trusted: a structure nested thousands deep would raise
RecursionError in every later consumer (the ORM, the API renderer, the page), a
NaN or an overflowing float is not JSON, and PostgreSQL's jsonb refuses NUL
characters and lone UTF-16 surrogates. Every result passes through ``loads``.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 100
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_SUSPECT = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


class UnsafeJSON(ValueError):
    """The bytes are not a JSON value we can keep (malformed, too deep, not finite)."""


def depth(data: bytes) -> int:
    """Nesting depth of a JSON text, computed without recursion."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def _refuse_constant(name: str):
    raise UnsafeJSON(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"{text[:20]} does not fit a number")
    return value


def loads(data: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a job's JSON; raises UnsafeJSON for anything that cannot be stored and served."""
    if data.count(b"[") + data.count(b"{") > max_depth and depth(data) > max_depth:
        raise UnsafeJSON(f"nested deeper than {max_depth} levels")
    text = data.decode("utf-8", "replace")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnsafeJSON:
        raise
    except (ValueError, RecursionError) as exc:  # malformed, or an integer too long to convert
        raise UnsafeJSON(str(exc)[:200]) from None
    return scrub(value) if _SUSPECT.search(text) else value


def scrub(value: Any) -> Any:
    """Replace NUL characters and lone surrogates (in strings and keys) with U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, dict):
        return {scrub(key): scrub(item) for key, item in value.items()}
    return value


def scrub_text(text: str, limit: int) -> str:
    """A string from a job, storable and at most ``limit`` characters."""
    text = _UNSTORABLE.sub("\ufffd", text)
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"
