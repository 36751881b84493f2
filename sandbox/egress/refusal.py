"""A request the door refuses: the exception every check raises, its message the reason recorded."""

from __future__ import annotations


class Refusal(Exception):
    """A request the proxy refuses; the message is the reason recorded (the job sees only 403)."""
