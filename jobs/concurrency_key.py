"""A function's ``concurrency_key``: a strict JSON-path subset over an invocation's args, parsed at
deploy and evaluated once at submit (the job stores the key it found; the fill never reads args).

The grammar, and nothing more: ``$`` then one or more steps, the first an index into the args list:

    path  := "$" "[" INDEX "]" step*
    step  := "[" INDEX "]" | "." NAME | "[" QUOTED "]"
    INDEX := 0 | [1-9][0-9]{0,5}        NAME := [A-Za-z_][A-Za-z0-9_]{0,63}
    QUOTED := '"' or "'" around 1-64 characters other than quotes and backslashes

e.g. ``$[0].store_id``, ``$[1]``, ``$[0]["customer id"].region``. No wildcards, filters, slices or
recursion: a key is one value, found in one walk bounded by ``MAX_STEPS``. What it finds becomes
the key as text: a string as it is, anything else as compact JSON; a key longer than
``MAX_KEY_CHARS`` is its SHA-256 (so a huge argument cannot become a huge column). Args where the path
finds nothing share one key, the empty key (they are serialised together, never unlimited)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

MAX_PATH_CHARS = 200
MAX_STEPS = 8
MAX_KEY_CHARS = 200

_STEP = re.compile(
    r"\[(?P<index>0|[1-9][0-9]{0,5})\]"
    r"|\.(?P<name>[A-Za-z_][A-Za-z0-9_]{0,63})"
    r"|\[(?P<q>[\"'])(?P<quoted>[^\"'\\]{1,64})(?P=q)\]"
)


class KeyPathError(ValueError):
    """The path is not in the subset; the message says where and why."""


def parse(path: str) -> tuple[int | str, ...]:
    """The steps of ``path`` (ints index lists, strs name object members); raises KeyPathError."""
    if not isinstance(path, str) or not path:
        raise KeyPathError("must be a path such as $[0].store_id")
    if len(path) > MAX_PATH_CHARS:
        raise KeyPathError(f"at most {MAX_PATH_CHARS} characters")
    if not path.startswith("$["):
        raise KeyPathError("must start with $[N], an index into the args (e.g. $[0].store_id)")
    steps: list[int | str] = []
    at = 1
    while at < len(path):
        match = _STEP.match(path, at)
        if match is None:
            raise KeyPathError(f"cannot read {path[at : at + 20]!r} at character {at + 1}")
        if match["index"] is not None:
            steps.append(int(match["index"]))
        else:
            steps.append(match["name"] if match["name"] is not None else match["quoted"])
        at = match.end()
    if not isinstance(steps[0], int):
        raise KeyPathError("must start with $[N], an index into the args (e.g. $[0].store_id)")
    if len(steps) > MAX_STEPS:
        raise KeyPathError(f"at most {MAX_STEPS} steps")
    return tuple(steps)


def evaluate(steps: tuple[int | str, ...], args: Any) -> str:
    """The key ``steps`` find in ``args`` as text ("" when they find nothing)."""
    value = args
    for step in steps:
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    if len(text) > MAX_KEY_CHARS:
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text


def label(path: str) -> str:
    """What a waiting reason calls the key: the path's last name (``store_id``), else the path."""
    try:
        steps = parse(path)
    except KeyPathError:
        return path
    names = [s for s in steps if isinstance(s, str)]
    return names[-1] if names else path
