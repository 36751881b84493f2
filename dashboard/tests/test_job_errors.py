"""A job's error in plain words: tracebacks cut to the user's frames, as the runner reports them.

The tracebacks below are what the runner in lambdasite/python and lambdasite/node reported for these
jobs (copied from real runs; the chained one without some of its library frames), so the shapes
are the real ones."""

from __future__ import annotations

from pathlib import Path

from dashboard.job_errors import (
    JS_FILE,
    JS_WRAPPER_PREFIX,
    JS_WRAPPER_TAIL,
    PY_FILE,
    plain_error,
    stuck_note,
    user_traceback,
)

RUNNER = Path(__file__).resolve().parents[2] / "sandbox" / "images" / "runner"

# def main(x): return helper(x) / def helper(x): return json.loads(x), args ["{bad"]
PY_INTO_THE_STDLIB = """\
Traceback (most recent call last):
  File "handler.py", line 3, in main
    return helper(x)
           ^^^^^^^^^
  File "handler.py", line 5, in helper
    return json.loads(x)
           ^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/decoder.py", line 337, in decode
    obj, end = self.raw_decode(s, idx=_w(s, 0).end())
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/decoder.py", line 353, in raw_decode
    obj, end = self.scan_once(s, idx)
               ^^^^^^^^^^^^^^^^^^^^^^
json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)
"""

# urllib.request.urlopen('http://example.com') in a cell without a network: a chain of two
PY_CHAINED = """\
Traceback (most recent call last):
  File "/usr/lib/python3.11/urllib/request.py", line 1348, in do_open
    h.request(req.get_method(), req.selector, req.data, headers,
  File "/usr/lib/python3.11/socket.py", line 962, in getaddrinfo
    for res in _socket.getaddrinfo(host, port, 0, SOCK_STREAM):
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
socket.gaierror: [Errno -3] Temporary failure in name resolution

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "handler.py", line 3, in main
    urllib.request.urlopen('http://example.com', timeout=2)
  File "/usr/lib/python3.11/urllib/request.py", line 216, in urlopen
    return opener.open(url, data, timeout)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/urllib/request.py", line 1351, in do_open
    raise URLError(err)
urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>
"""

PY_OWN = """\
Traceback (most recent call last):
  File "handler.py", line 4, in main
    raise ValueError('nope')
ValueError: nope
"""

PY_SYNTAX = """\
  File "handler.py", line 1
    def main(:
             ^
SyntaxError: invalid syntax
"""

JS_OWN = """\
SyntaxError: Expected property name or '}' in JSON at position 1 (line 1 column 2)
    at helper (handler.js:2:34)
    at main (handler.js:1:88)"""

JS_SYNTAX = """\
handler.js:3
;return (typeof main !== 'undefined') ? main : undefined;
^

SyntaxError: Unexpected token ';'"""


def test_it_keeps_the_users_frames_and_hides_the_libraries_they_called():
    short = user_traceback(PY_INTO_THE_STDLIB, "python")
    assert short == (
        "Traceback (most recent call last):\n"
        '  File "handler.py", line 3, in main\n'
        "    return helper(x)\n"
        "           ^^^^^^^^^\n"
        '  File "handler.py", line 5, in helper\n'
        "    return json.loads(x)\n"
        "           ^^^^^^^^^^^^^\n"
        "json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )
    assert "/usr/lib/python3.11" not in short


def test_of_a_chain_it_shows_the_exception_raised_where_the_users_code_raised_it():
    short = user_traceback(PY_CHAINED, "python")
    assert short.splitlines() == [
        "Traceback (most recent call last):",
        '  File "handler.py", line 3, in main',
        "    urllib.request.urlopen('http://example.com', timeout=2)",
        "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>",
    ]


def test_a_traceback_of_the_users_frames_only_and_a_syntax_error_are_left_as_they_are():
    assert user_traceback(PY_OWN, "python") == PY_OWN.strip()
    assert user_traceback(PY_SYNTAX, "python") == PY_SYNTAX.strip()
    assert user_traceback("", "python") == ""


def test_node_frames_count_line_ones_columns_from_the_users_code():
    assert user_traceback(JS_OWN, "node").splitlines()[1:] == [
        "    at helper (handler.js:2:34)",
        "    at main (handler.js:1:27)",  # `helper(x)` is the 27th character of the user's line 1
    ]


def test_a_node_syntax_error_does_not_show_the_runners_wrapper():
    short = user_traceback(JS_SYNTAX, "node")
    assert "typeof main" not in short and "^" not in short
    assert short == (
        "handler.js: at the end of the code (is a bracket or brace left open?)\n"
        "SyntaxError: Unexpected token ';'"
    )


def test_the_error_in_plain_words_keeps_the_whole_traceback_behind_it():
    error = plain_error(
        {"type": "URLError", "message": "<urlopen error [Errno -3] no name>", "traceback": PY_CHAINED},
        "python",
    )
    assert error.kind == "URLError" and error.headline == "<urlopen error no name>"
    assert error.message == "<urlopen error [Errno -3] no name>"  # as reported, for the details
    assert "handler.py" in error.traceback and "socket.py" not in error.traceback
    assert error.full_traceback == PY_CHAINED
    own = plain_error({"type": "ValueError", "message": "nope", "traceback": PY_OWN}, "python")
    assert own.full_traceback == "" and own.message == ""  # nothing more to show
    assert plain_error(None, "python") is None


def test_the_platforms_own_errors_are_said_plainly_with_the_limit():
    timeout = plain_error(
        {
            "type": "Timeout",
            "message": "exceeded the 5000 ms time limit",
            "traceback": "when stopped, the job's process was sleeping after 3 ms of CPU, with 1 threads",
        },
        "python",
        timeout="5.00 s",
    )
    assert timeout.headline == "It ran longer than its time limit of 5.00 s and was stopped."
    assert timeout.note == "When it was stopped, its process was sleeping, after 3 ms of CPU, with 1 thread."
    assert timeout.traceback == "" and timeout.full_traceback == ""
    killed = plain_error(
        {"type": "MemoryLimitExceeded", "message": "exceeded the 128 MB memory limit and was killed"},
        "node",
        memory_mb=128,
    )
    assert killed.headline == "It used more memory than its limit of 128 MB and was stopped."
    assert stuck_note("when stopped, the job's process was running after 4990 ms of CPU, with 4 threads") == (
        "When it was stopped, its process was running, after 4990 ms of CPU, with 4 threads."
    )
    assert stuck_note("something else") == ""


def test_the_names_it_relies_on_are_the_runners():
    """The wrapper and file names are the runner's: if the runner changes them, this fails, not the page."""
    child = (RUNNER / "child.js").read_text()
    assert f"'{JS_WRAPPER_PREFIX}'" in child and f"`\\n{JS_WRAPPER_TAIL}" in child
    assert f"const USER_FILE = '{JS_FILE}';" in child
    assert f'USER_FILE = "{PY_FILE}"' in (RUNNER / "lambdasite_runner" / "pychild.py").read_text()
