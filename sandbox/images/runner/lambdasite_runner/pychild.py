"""Python job processes: a snippet's child (forked from the clean runner) and the code both it and a
function's job child use to call the handler and report its result."""

import functools
import json
import os
import resource
import signal
import struct
import sys

from . import jobenv
from .privileges import drop_to_job_uid
from .wire import MAX_FD, control_pair, job_pipes, read_exact, write_all

USER_FILE = "handler.py"
CHILD_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGALRM)


def reset_signals():
    signal.set_wakeup_fd(-1)
    for sig in CHILD_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def line_buffered_std():
    sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")
    sys.stderr.reconfigure(line_buffering=True, errors="backslashreplace")


def set_cpu_limit(cpu_s):
    if cpu_s > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))


def call_and_report(get_handler, args, res_fd, max_result, durable=None):
    """Call the handler, write ``{"ok", "result"}`` or ``{"ok": false, "error"}`` to ``res_fd``, exit.
    ``durable`` (a durable run's ``{"run", "journal"}``): the handler gets its context first."""
    main_pid = os.getpid()

    def report(payload):
        _report(payload, res_fd, max_result, main_pid)

    try:
        fn = get_handler()
        if durable is not None:
            from .durable import Context

            ctx = Context(durable, report)
            if isinstance(args, list):
                args = [ctx, *args]
            else:
                fn = functools.partial(fn, ctx)
        value = fn(*args) if isinstance(args, list) else fn(**args)
        if hasattr(value, "__await__"):
            value = _run_awaitable(value)
        try:
            payload = json.dumps({"ok": True, "result": value}, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            payload = error_payload("ResultNotSerializable", "result is not JSON-serialisable: %s" % exc, "")
    except BaseException as exc:  # noqa: BLE001 - everything the user raised is reported
        payload = describe(exc)
    report(payload)


def _report(payload, res_fd, max_result, main_pid):
    """Write the result frame's payload and exit (never returns)."""
    flush_std()
    if os.getpid() != main_pid:
        # a process the user forked reached the end of the handler: only the job's own process reports
        os._exit(0)
    data = payload.encode("utf-8", "backslashreplace")
    if len(data) > max_result:
        data = error_payload(
            "ResultTooLarge", "result is %d bytes, over the %d-byte limit" % (len(data), max_result), ""
        ).encode()
    # stdout/stderr closed first: the runner sees EOF on all three pipes and answers
    # without waiting for this process to tear down its address space
    os.close(1)
    os.close(2)
    write_all(res_fd, data)
    os.close(res_fd)
    os._exit(0)


def describe(exc):
    """The error payload for an exception the user's code raised (its own frames only)."""
    import traceback

    try:
        tb = traceback.TracebackException.from_exception(exc)
        return error_payload(type(exc).__name__, str(exc), user_traceback(tb))
    except BaseException:  # noqa: BLE001 - a hostile exception (its __str__ raising, say)
        return error_payload(type(exc).__name__, "(the exception could not be described)", "")


def python_child(out_w, err_w, res_w, go_r, ctl):
    """Pre-forked between jobs: set up, wait for the go signal, drop to the job's uid, then run the body.
    ``ctl``: a durable run's record channel (kept as fd 5 by a durable run only)."""
    import linecache

    os.setsid()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(res_w, 3)
    os.dup2(go_r, 4)
    os.dup2(ctl, 5)
    res_w, go_r = 3, 4
    os.closerange(6, MAX_FD)
    reset_signals()
    os.chdir("/tmp")
    line_buffered_std()
    try:
        (size,) = struct.unpack(">I", read_exact(go_r, 4))
        meta = json.loads(read_exact(go_r, size))
    except (EOFError, ValueError):
        os._exit(0)  # the runner discarded this spare
    os.close(go_r)
    drop_to_job_uid(int(meta["uid"]))
    jobenv.apply(meta.get("job_env") or {})
    body = read_exact(0, meta["body"])
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    set_cpu_limit(int(meta.get("cpu_s") or 0))
    req = json.loads(body)
    del body
    durable = req.get("durable")
    if durable is None:
        os.close(5)
    src = req["code"]
    linecache.cache[USER_FILE] = (len(src), None, src.splitlines(True), USER_FILE)

    def handler():
        namespace = {"__name__": "__main__", "__file__": USER_FILE}
        exec(compile(src, USER_FILE, "exec"), namespace)
        fn = namespace.get(req["handler"])
        if not callable(fn):
            raise LookupError("handler %r is not defined as a function" % req["handler"])
        return fn

    max_result = int(meta.get("max_result_bytes") or 1 << 20)
    call_and_report(handler, req.get("args") or [], res_w, max_result, durable)


class PythonSpare:
    """A child forked ahead of the job from the clean runner; it blocks until given the job's header."""

    def __init__(self):
        (self.out_r, self.err_r, self.res_r, self.go_w), theirs = job_pipes()
        self.ctl, ctl_theirs = control_pair()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                python_child(*theirs, ctl_theirs)  # stdout, stderr, result, go, a durable run's records
            finally:
                os._exit(70)
        for fd in (*theirs, ctl_theirs):
            os.close(fd)

    def go(self, meta):
        head = json.dumps(meta).encode()
        try:
            write_all(self.go_w, struct.pack(">I", len(head)) + head)
        finally:
            os.close(self.go_w)


def _run_awaitable(value):
    import asyncio

    async def _await():
        return await value

    return asyncio.run(_await())


def flush_std():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream: nothing more to say
            pass


def user_traceback(tb):
    """Keep the user's frames and what they called; drop the runner's own frames."""
    frames = list(tb.stack)
    first = next((i for i, fs in enumerate(frames) if fs.filename == USER_FILE), None)
    if first is not None:
        tb.stack = type(tb.stack).from_list(frames[first:])
    elif tb.exc_type is not None and issubclass(tb.exc_type, SyntaxError):
        tb.stack = type(tb.stack).from_list([])
    return "".join(tb.format())


def error_payload(etype, message, tb):
    return json.dumps({"ok": False, "error": {"type": etype, "message": message, "traceback": tb}})
