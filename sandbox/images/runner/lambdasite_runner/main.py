"""The runner's request loop: bind to the tenant (and function), start each job's process, supervise it,
clean up after it."""

import json
import os
import signal
import struct
import sys
import time

from . import door, jobenv, state
from .cleanup import after_job, fingerprint, run_cleaner
from .jobloop import Caps, DirectChild, ZygoteChild, on_alarm, run_job
from .masking import Masker
from .nodechild import NodeSpare
from .privileges import become_runner, set_non_dumpable
from .pychild import PythonSpare
from .wire import pipe_through, read_exact, write_frame
from .zygote import Zygote

PROTOCOL_VERSION = 5
MAX_HEADER = 1 << 22  # a request's header: its limits, configuration and secrets
RUNTIME = os.environ.get("LAMBDASITE_RUNTIME", "python")
INIT_TIMEOUT_MS = 10_000

_node_spare = None
_python_spare = None


def bind(job_uid):
    become_runner(job_uid)
    state.job_uid = job_uid
    state.door = door.present()
    state.baseline = fingerprint()


def _node_env(function=None):
    """What a node process is started with: the door's variables (read by Node at start), and a
    function's configuration and secrets (its module is loaded before its job arrives)."""
    env = door.proxy_env() if state.door else {}
    if function is not None:
        env.update(function["env"])
    return env


def prepare_next():
    """Between jobs, after the cleanup: start the next job's process so the job does not wait for it."""
    global _node_spare, _python_spare
    if RUNTIME == "node":
        if state.job_uid is not None:  # a node process is started as the job's uid, known once bound
            _node_spare = NodeSpare(state.job_uid, state.function, _node_env(state.function))
    elif state.function is None:
        _python_spare = PythonSpare()
    elif state.zygote is not None:
        state.zygote.prepare()


def _drop_python_spare():
    global _python_spare
    if _python_spare is not None:
        os.close(_python_spare.go_w)  # it reads EOF and exits; the sweep reaps it
        os.close(_python_spare.ctl)
        _python_spare = None


def _control(spare, meta):
    """A pre-started process's record channel: kept for a durable run, else closed."""
    if meta.get("durable"):
        return spare.ctl
    os.close(spare.ctl)
    return None


def _caps(meta):
    """The job's log caps, and its masker when it holds secrets (kept in state to be zeroed after)."""
    values = [value for _, value in meta.get("secrets") or []]
    masker = Masker(values) if values else None
    state.masker = masker if masker is not None and masker.active else None
    return Caps(int(meta.get("max_log_bytes") or 1 << 20), int(meta.get("max_log_lines") or -1), state.masker)


# -- snippets ---------------------------------------------------------------------


def start_snippet(meta):
    global _node_spare, _python_spare
    if RUNTIME == "node":
        spare = _node_spare or NodeSpare(state.job_uid, None, _node_env())
        _node_spare = None
        # the door's variables were given when it started; the job's own ones come with its request
        extra = {"env": jobenv.variables(meta, with_door=False)}
        ctl = _control(spare, meta)
        spare.feed(meta, meta["body"], extra)
        return DirectChild(spare.pid, spare.out_r, spare.err_r, spare.res_r, ctl)
    spare = _python_spare or PythonSpare()
    _python_spare = None
    ctl = _control(spare, meta)
    spare.go({**meta, "job_env": jobenv.variables(meta, with_door=state.door)})
    return DirectChild(spare.pid, spare.out_r, spare.err_r, spare.res_r, ctl)


# -- functions --------------------------------------------------------------------


def initialise(meta, caps):
    """Load the function's module (Python: in a zygote); sends the ``I`` frame. -> bool."""
    global _node_spare
    function = state.function
    if RUNTIME == "node":
        # every node process loads the module itself, before its job arrives
        _node_spare = NodeSpare(state.job_uid, function, _node_env(function))
        write_frame(b"I", b"1{}")
        return True
    _drop_python_spare()
    zygote = Zygote(state.job_uid, function)
    state.zygote = zygote
    deadline = time.monotonic() + int(meta.get("init_timeout_ms") or INIT_TIMEOUT_MS) / 1000.0

    def relay(fd):
        return caps.relay(fd, b"1" if fd == zygote.out_r else b"2")

    ok, report = zygote.initialise(relay, deadline, state.wake_r)
    caps.flush()
    write_frame(b"I", caps.masker.mask(report) if caps.masker is not None else report)
    if not ok:
        state.zygote = None  # the sweep kills it with everything else
    return ok


def start_function_job(meta, args_size):
    global _node_spare
    if RUNTIME == "node":
        spare = _node_spare or NodeSpare(state.job_uid, state.function, _node_env(state.function))
        _node_spare = None
        ctl = _control(spare, meta)
        spare.feed(meta, args_size, {"durable": True} if ctl is not None else None)
        return DirectChild(spare.pid, spare.out_r, spare.err_r, spare.res_r, ctl)
    zygote = state.zygote
    max_result = int(meta.get("max_result_bytes") or 1 << 20)
    durable = bool(meta.get("durable"))
    out_r, err_r, res_r, body_w, ctl = zygote.start_job(max_result, int(meta.get("cpu_s") or 0), durable)
    pipe_through(body_w, args_size)
    return ZygoteChild(zygote, out_r, err_r, res_r, ctl)


def handle_function(meta, fn):
    code_size = meta.get("code_bytes")
    if state.function is not None and state.function["key"] != fn["key"]:
        sys.stderr.write("runner: this cell belongs to another function\n")
        os._exit(4)
    if code_size is not None:
        code = read_exact(0, int(code_size))
        if state.function is None:
            # its configuration and secrets are bound with it: the cell is keyed by their revisions
            state.function = {
                "key": fn["key"],
                "handler": fn["handler"],
                "deps": bool(fn.get("deps")),
                "code": code,
                "env": jobenv.variables(meta, with_door=state.door),
            }
    elif state.function is None:
        sys.stderr.write("runner: a function's first request must carry its code\n")
        os._exit(3)
    args_size = int(meta["body"]) - int(code_size or 0)
    caps = _caps(meta)
    if code_size is not None and not initialise(meta, caps):
        state.function = None
        _skip(args_size)
        return after_job(state.wake_r)
    if meta.get("warm"):
        _skip(args_size)
    else:
        if code_size is not None and not run_cleaner(state.wake_r):
            os._exit(5)  # what the initialisation wrote to /tmp is not the first job's to see
        run_job(meta, lambda: start_function_job(meta, args_size), caps, state.wake_r)
    return after_job(state.wake_r)


def _skip(size):
    while size > 0:
        size -= len(read_exact(0, min(size, 65536)))


# -- the loop -----------------------------------------------------------------------


def warm_up():
    import asyncio  # noqa: F401
    import linecache  # noqa: F401
    import traceback  # noqa: F401

    prepare_next()


def main():
    set_non_dumpable()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    state.wake_r = wake_r
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGALRM, on_alarm)
    # As PID 1, any signal left at its default disposition is dropped when sent from
    # inside the container. A handler would make it deliverable, so SIGTERM/SIGINT
    # (which Python handles by default) go back to SIG_DFL: nothing in the container
    # can stop the runner, and the host ends a cell with SIGKILL from outside.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    warm_up()
    version = "%d.%d.%d" % sys.version_info[:3]
    write_frame(b"H", json.dumps({"v": PROTOCOL_VERSION, "runtime": RUNTIME, "python": version}).encode())
    while True:
        try:
            head = read_exact(0, 5)
        except EOFError:
            os._exit(0)
        kind, size = struct.unpack(">cI", head)
        if kind == b"A":  # the host's answer to a durable run's record, come after its job ended
            _skip(size)
            continue
        if kind != b"J" or size > MAX_HEADER:
            sys.stderr.write("runner: bad request frame\n")
            os._exit(3)
        meta = json.loads(read_exact(0, size))
        uid = int(meta["uid"])
        if state.job_uid is None:
            bind(uid)
        elif uid != state.job_uid:
            sys.stderr.write("runner: this cell belongs to another tenant\n")
            os._exit(4)
        secrets = meta.get("secrets") or []
        if secrets != state.secrets:  # once per cell: it is keyed by the revisions of its secrets
            jobenv.write_files(secrets)
            state.secrets = secrets
        if meta.get("egress") and state.door:
            door.start_relay()  # before the job's process: it dies with the job's other processes
        fn = meta.get("fn")
        if fn is not None:
            clean = handle_function(meta, fn)
        else:
            run_job(meta, lambda meta=meta: start_snippet(meta), _caps(meta), wake_r)
            clean = after_job(wake_r)
        if state.masker is not None:
            state.masker.reset()
            state.masker = None
        if not clean:
            os._exit(5)  # reported unclean: the host retires this cell
        prepare_next()
