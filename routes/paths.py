"""A route's path pattern: ``/stripe``, ``/hello/{name}``, ``/files/{path+}``. Parsing, the shape two
patterns must not share, and matching a request's path (pure: no Django).

A pattern is ``/`` or ``/``-separated segments, each a literal (letters, digits and ``-._~@:+``), a
parameter ``{name}`` matching one non-empty segment, or, last only, ``{name+}`` matching the rest of
the path (one or more segments). Requests match on the percent-decoded segments of the raw path, so
an encoded ``%2F`` stays inside its segment. A trailing slash in a request is ignored. When several
patterns match, the most specific wins: at the first segment where they differ, a literal beats a
parameter, which beats a greedy parameter. Two patterns with the same shape (``/a/{x}`` and
``/a/{y}``) cannot both exist in a tenant: which one answers would be arbitrary."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

MAX_LENGTH = 300
MAX_SEGMENTS = 16
_LITERAL = re.compile(r"^[A-Za-z0-9._~@:+-]+$")
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]{0,31})(\+?)\}$")

LITERAL, PARAM, GREEDY = 0, 1, 2  # a segment's kind, in the order of precedence


class BadPattern(ValueError):
    """The pattern is not one this module accepts; the message says why, for a person."""


@dataclass(frozen=True)
class Segment:
    kind: int
    text: str  # the literal, or the parameter's name


@dataclass(frozen=True)
class Pattern:
    text: str
    segments: tuple[Segment, ...]

    @property
    def shape(self) -> str:
        """The pattern with its parameters' names left out: two patterns of one shape match alike."""
        parts = [s.text if s.kind == LITERAL else ("{}" if s.kind == PARAM else "{+}") for s in self.segments]
        return "/" + "/".join(parts)

    @property
    def rank(self) -> tuple:
        """Sorts the most specific pattern first (see the module's docstring)."""
        return (*(s.kind for s in self.segments), 3)  # 3: a shorter pattern after a longer one sharing it

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """The parameters of a request's decoded segments, or None when they do not match."""
        params: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.kind == GREEDY:
                rest = segments[index:]
                if not rest or any(part == "" for part in rest):
                    return None
                params[segment.text] = "/".join(rest)
                return params
            if index >= len(segments):
                return None
            part = segments[index]
            if segment.kind == LITERAL:
                if part != segment.text:
                    return None
            elif part == "":
                return None
            else:
                params[segment.text] = part
        return params if len(segments) == len(self.segments) else None


def parse(text: str) -> Pattern:
    """The pattern ``text`` names; raises ``BadPattern`` saying what is wrong with it."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise BadPattern("must start with /")
    if len(text) > MAX_LENGTH:
        raise BadPattern(f"at most {MAX_LENGTH} characters")
    if text == "/":
        return Pattern("/", ())
    if text.endswith("/"):
        raise BadPattern("must not end with / (a request's trailing slash is ignored anyway)")
    raw = text[1:].split("/")
    if len(raw) > MAX_SEGMENTS:
        raise BadPattern(f"at most {MAX_SEGMENTS} segments")
    segments, names = [], set()
    for index, part in enumerate(raw):
        if part == "":
            raise BadPattern("empty segment (//)")
        param = _PARAM.match(part)
        if param is None:
            if not _LITERAL.match(part):
                raise BadPattern(f"{part!r}: letters, digits and -._~@:+ only, or a {{parameter}}")
            segments.append(Segment(LITERAL, part))
            continue
        name, greedy = param.groups()
        if name in names:
            raise BadPattern(f"parameter {name} appears twice")
        if greedy and index != len(raw) - 1:
            raise BadPattern(f"{{{name}+}} must be the last segment")
        names.add(name)
        segments.append(Segment(GREEDY if greedy else PARAM, name))
    return Pattern(text, tuple(segments))


def request_segments(raw_path: str) -> list[str]:
    """A request's path below its tenant (raw, percent-encoded) as decoded segments; ``/`` and ``""``
    are no segments, a trailing slash is dropped."""
    path = raw_path.strip("/") if raw_path.endswith("/") else raw_path.lstrip("/")
    if path == "":
        return []
    return [unquote(part, errors="replace") for part in path.split("/")]


def best_match(patterns, segments: list[str]):
    """The first of ``patterns`` (``(Pattern, value)`` pairs already sorted by rank) that matches:
    -> (value, params), or None."""
    for pattern, value in patterns:
        params = pattern.match(segments)
        if params is not None:
            return value, params
    return None
