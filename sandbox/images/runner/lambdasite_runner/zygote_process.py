"""The zygote process itself (see zygote.py for the runner's side): load the module once, seal
itself, then fork a job process per request, or hand the request to one forked ahead of time."""

import fcntl
import json
import os
import signal
import socket
import struct
import sys
import time

from . import jobenv, pychild
from .privileges import drop_to_job_uid, set_non_dumpable
from .wire import MAX_FD, read_exact, write_all

DEPS_SITE = "/opt/deps/site-packages"
START = struct.Struct(">II")  # a job request: max_result_bytes, cpu_s
STATUS = struct.Struct(">iQ")  # a job's end: wait status, max RSS in KiB


def _place(fds):
    """Put ``fds`` at 1, 2, 3... (0 becomes /dev/null) and close everything else."""
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]  # out of the way of the targets first
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    for target, fd in enumerate(moved, start=1):
        os.dup2(fd, target)
    os.closerange(len(fds) + 1, MAX_FD)


def zygote_main(uid, fds, code_size, function):
    # fds: 1 stdout, 2 stderr, 3 init report, 4 code, 5 control socket
    handler_name, deps = function["handler"], function["deps"]
    os.setsid()
    _place(fds)
    pychild.reset_signals()
    os.chdir("/tmp")
    drop_to_job_uid(uid)
    # the module's initialisation sees the function's configuration, secrets and door; every job
    # (a fork) inherits them
    jobenv.apply(function["env"])
    src = read_exact(4, code_size).decode("utf-8", "surrogateescape")
    os.close(4)
    pychild.line_buffered_std()
    me = os.getpid()
    t0 = time.monotonic()
    try:
        fn = _load(src, handler_name, deps)
        report = b"1" + json.dumps({"init_ms": round((time.monotonic() - t0) * 1000, 3)}).encode()
    except InitLeftovers as exc:
        fn, report = None, b"0" + pychild.error_payload("InitLeftovers", str(exc), "").encode()
    except BaseException as exc:  # noqa: BLE001 - the module's own error, reported as the job's
        fn, report = None, b"0" + pychild.describe(exc).encode()
    pychild.flush_std()
    if os.getpid() != me:
        os._exit(0)  # a process the module forked
    write_all(3, report)
    os.close(3)
    if fn is None:
        os._exit(0)
    devnull = os.open("/dev/null", os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    set_non_dumpable()
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    import gc

    gc.freeze()  # the module's objects stay shared with every job instead of being copied by the GC
    _serve(socket.socket(fileno=5), fn)


def _load(src, handler_name, deps):
    import linecache
    import types

    if deps:
        sys.path.append(DEPS_SITE)
    module = types.ModuleType("handler")
    module.__file__ = pychild.USER_FILE
    sys.modules["handler"] = module
    linecache.cache[pychild.USER_FILE] = (len(src), None, src.splitlines(True), pychild.USER_FILE)
    exec(compile(src, pychild.USER_FILE, "exec"), module.__dict__)
    fn = getattr(module, handler_name, None)
    if not callable(fn):
        raise LookupError("handler %r is not defined as a function" % handler_name)
    left = _leftovers()
    if left:
        raise InitLeftovers("it left %s; jobs would share them: create them inside the handler" % left)
    return fn


class InitLeftovers(Exception):
    """What a module may not keep from its initialisation, because jobs would share it."""


def _leftovers():
    import gc
    import threading

    found = []
    # hooks Python calls by itself would run the module's code in the zygote, between jobs
    hooks = [
        name
        for name, hook in (
            ("sys.settrace", sys.gettrace()),
            ("sys.setprofile", sys.getprofile()),
            ("threading.settrace", threading.gettrace()),
            ("threading.setprofile", threading.getprofile()),
            ("gc.callbacks", gc.callbacks),
        )
        if hook
    ]
    if hooks:
        found.append("hooks (%s)" % ", ".join(hooks))
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        found.append("%d thread(s) running" % (threads - 1))
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in (0, 1, 2, 3, 5):  # stdio, the init report, the control socket
            try:
                os.fstat(fd)
                fds.append(fd)
            except OSError:
                pass  # the listing's own descriptor
    if fds:
        found.append("%d open file descriptor(s)" % len(fds))
    with open("/proc/self/maps") as fh:
        shared = sum(1 for line in fh if line.split()[1][1] == "w" and line.split()[1][3] == "s")
    if shared:
        found.append("%d shared writable memory mapping(s)" % shared)
    me = str(os.getpid())
    children = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as fh:
                    if fh.read().rsplit(")", 1)[1].split()[1] == me:
                        children += 1
            except (OSError, IndexError):
                pass
    if children:
        found.append("%d child process(es)" % children)
    return ", ".join(found)


def _serve(sock, fn):
    """Fork a job process per request. Between jobs, once the runner has cleaned up and says so
    (``W``), a spare is forked ahead of time and waits for its job's pipes, so a job does not wait
    for the fork; a spare found dead (killed by a job, say) is replaced by a fork on demand."""
    spare = None
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 64, 5)
        except InterruptedError:
            continue
        if message == b"W" and not fds:
            if spare is None:
                spare = _prefork(fn)
            continue
        if not message or len(fds) not in (4, 5) or len(message) != START.size:
            os._exit(0)  # the runner is gone or confused: never guess
        pid = None
        if spare is not None:
            pid, channel = spare
            spare = None
            try:
                socket.send_fds(channel, [message], fds)
            except OSError:
                _reap(pid)
                pid = None
            channel.close()
        if pid is None:
            max_result, cpu_s = START.unpack(message)
            pid = os.fork()
            if pid == 0:
                try:
                    _job(fds, fn, max_result, cpu_s)
                finally:
                    os._exit(73)
        for fd in fds:
            os.close(fd)
        sock.send(b"P" + pid.to_bytes(4, "big"))
        status, usage = _reap(pid)
        sock.send(b"S" + STATUS.pack(status, usage.ru_maxrss if usage else 0))


def _reap(pid):
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            return status, usage
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0, None


def _prefork(fn):
    """A job process forked ahead of its job: it blocks until the zygote hands it the job's pipes."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(5)  # the runner's control socket is the zygote's alone
            ours.close()
            message, fds, _, _ = socket.recv_fds(theirs, 64, 5)
            if len(fds) not in (4, 5) or len(message) != START.size:
                os._exit(0)
            max_result, cpu_s = START.unpack(message)
            _job(fds, fn, max_result, cpu_s)
        finally:
            os._exit(74)
    theirs.close()
    return pid, ours


def _job(fds, fn, max_result, cpu_s):
    """A job process: a fork of the initialised zygote, with the job's own pipes and nothing else (and a
    durable run's record channel, then the arguments are ``{"args", "durable"}``)."""
    durable = len(fds) == 5
    _place(fds)  # 1 stdout, 2 stderr, 3 result, 4 arguments, 5 a durable run's records
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    os.setsid()
    pychild.set_cpu_limit(cpu_s)
    chunks = []
    while True:
        data = os.read(4, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(4)
    try:
        args = json.loads(b"".join(chunks))
    except ValueError:
        args = []
    del chunks
    run = None
    if durable:
        run = args.get("durable") if isinstance(args, dict) else None
        args = args.get("args") if isinstance(args, dict) else []
        run = run if isinstance(run, dict) else {}
    args = args if isinstance(args, (list, dict)) else [args]
    pychild.call_and_report(lambda: fn, args, 3, max_result, run)
