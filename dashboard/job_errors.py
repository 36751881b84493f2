"""A job's error in plain words for its page: a headline a person can read, and the traceback cut to
the user's own frames (the whole of it stays one click away).

The runner (``sandbox/images/runner``) already drops its own frames *before* the user's first one.
What is left to hide here: the frames of the libraries the user's code called (the standard
library, installed dependencies), the earlier exceptions of a chain, and in Node the runner's
wrapper around the code, which shows up in a syntax error's excerpt and shifts line 1's columns."""

from __future__ import annotations

import re
from dataclasses import dataclass

PY_FILE = "handler.py"
JS_FILE = "handler.js"
# child.js compiles the user's code inside this prefix (on line 1) and this closing line
JS_WRAPPER_PREFIX = "(function (exports, require, module, __filename, __dirname) {"
JS_WRAPPER_TAIL = ";return (typeof "

_CHAIN = re.compile(
    r"\n(?:During handling of the above exception, another exception occurred:"
    r"|The above exception was the direct cause of the following exception:)\n\n"
)
_PY_FRAME = re.compile(r'^  File "(?P<file>[^"]*)", line \d+')
_JS_LINE1 = re.compile(rf"({re.escape(JS_FILE)}):1:(\d+)")
_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
_STUCK = re.compile(
    r"^when stopped, the job's process was (?P<state>.+?) after (?P<cpu>\d+) ms of CPU, "
    r"with (?P<threads>\d+) threads?$"
)

# error types the platform reports (sandbox verdicts, the worker), said plainly
PLAIN = {
    "Timeout": "It ran longer than its time limit{timeout} and was stopped.",
    "CpuTimeExceeded": "It used up its CPU time and was stopped.",
    "MemoryLimitExceeded": "It used more memory than its limit{memory} and was stopped.",
    "ResultTooLarge": "It returned a result larger than this tenant may store.",
    "CorruptResult": "It wrote a result that could not be read.",
    "ProcessKilled": "Its process was killed before it returned.",
    "ProcessExited": "Its process exited before it returned.",
    "BuildFailed": "Its function version failed to build.",
    "WorkerStopped": "The worker running it shut down; it is run again if it has retries left.",
    "InternalError": "The platform failed while running it (not your code).",
    "UnsettledPromise": "Its handler returned a promise that never settled.",
}


@dataclass(frozen=True)
class PlainError:
    kind: str  # the exception's type, e.g. ValueError
    headline: str  # the message without errno codes, or a sentence for the platform's own types
    message: str  # the message as reported, when the headline says it in other words ("" if not)
    traceback: str  # the user's frames and the exception
    full_traceback: str  # as the runner reported it ("" when it says no more than ``traceback``)
    note: str  # what the runner saw of a timed-out process, in words ("" if nothing)


def plain_error(
    error: dict | None, runtime: str, *, timeout: str = "", memory_mb: int | None = None
) -> PlainError | None:
    """A job's (or attempt's) ``error`` as its page shows it; ``timeout`` (already in words) and
    ``memory_mb`` name the limits a stopped run ran into."""
    if not error:
        return None
    kind = str(error.get("type") or "Error")
    message = str(error.get("message") or "")
    text = str(error.get("traceback") or "")
    note = ""
    if kind == "Timeout" and (stuck := stuck_note(text)):
        note, text = stuck, ""
    short = user_traceback(text, runtime)
    limits = {
        "timeout": f" of {timeout}" if timeout else "",
        "memory": f" of {memory_mb} MB" if memory_mb else "",
    }
    headline = PLAIN[kind].format(**limits) if kind in PLAIN else _ERRNO.sub("", message)
    return PlainError(
        kind=kind,
        headline=headline,
        message=message if headline != message else "",
        traceback=short,
        full_traceback=text if text.strip() != short.strip() else "",
        note=note,
    )


def user_traceback(text: str, runtime: str) -> str:
    """The traceback with only the user's frames (and the exception itself)."""
    if not text.strip():
        return ""
    return _node_frames(text) if runtime == "node" else _python_frames(text)


def _python_frames(text: str) -> str:
    """The last exception of a chain (the one raised), with the frames of handler.py only."""
    section = _CHAIN.split(text)[-1]
    kept: list[str] = []
    frame_is_users = True  # lines before the first frame (the header) are kept
    for line in section.splitlines():
        frame = _PY_FRAME.match(line)
        if frame:
            frame_is_users = frame.group("file") == PY_FILE
        elif not line.startswith("    "):
            frame_is_users = True  # the exception's own lines, unindented
        if frame_is_users:
            kept.append(line)
    if len(kept) == 1 and kept[0].startswith("Traceback"):
        return section.strip()  # nothing but library frames: say it all rather than nothing
    if kept and kept[0].startswith("Traceback") and not any(_PY_FRAME.match(x) for x in kept):
        kept = kept[1:]  # no frame of the user's left: the header would introduce nothing
    return "\n".join(kept).strip()


def _node_frames(text: str) -> str:
    """Stack lines of handler.js only; the wrapper's excerpt in a syntax error said as a place;
    line 1's columns counted from the user's first character, not the wrapper's."""
    lines = text.splitlines()
    if (
        len(lines) >= 2
        and re.fullmatch(rf"{re.escape(JS_FILE)}:\d+", lines[0])
        and lines[1].startswith(JS_WRAPPER_TAIL)
    ):
        rest = lines[2:]
        while rest and (not rest[0].strip() or set(rest[0].strip()) == {"^"}):
            rest = rest[1:]
        lines = [f"{JS_FILE}: at the end of the code (is a bracket or brace left open?)", *rest]
    kept = [x for x in lines if not x.startswith("    at ") or JS_FILE in x]
    return "\n".join(_JS_LINE1.sub(_unshift, x) for x in kept).strip()


def _unshift(match: re.Match) -> str:
    column = int(match.group(2))
    if column > len(JS_WRAPPER_PREFIX):
        column -= len(JS_WRAPPER_PREFIX)
    return f"{match.group(1)}:1:{column}"


def stuck_note(text: str) -> str:
    """The runner's look at a timed-out process, in words: "When it was stopped, its process was
    sleeping, after 3 ms of CPU, with 1 thread." ("" if ``text`` is not that)."""
    found = _STUCK.match(text.strip())
    if not found:
        return ""
    threads = int(found.group("threads"))
    plural = "" if threads == 1 else "s"
    return (
        f"When it was stopped, its process was {found.group('state')}, after {found.group('cpu')} ms "
        f"of CPU, with {threads} thread{plural}."
    )
