"""A Python function's zygote: runs the module's initialisation once; every job is a fresh fork of it.

Runner side: :class:`Zygote` starts it, relays its initialisation output, asks it
for a job process per job (passing the job's pipes over a socket) and checks
after every job that the job changed nothing about it. Zygote side:
:func:`zygote_main`. The zygote runs as the job uid (it runs user code: the
module), is non-dumpable and blocks every signal it can once initialised, and
refuses an initialisation that leaves threads, child processes, open
descriptors or shared writable memory behind, since each would carry one job's
writes to the next."""

import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import time

from . import pychild
from .privileges import drop_to_job_uid, set_non_dumpable
from .wire import MAX_FD, read_exact, write_all

DEPS_SITE = "/opt/deps/site-packages"
MAX_INIT_REPORT = 1 << 16
STATUS_WAIT_S = 2.0
_START = struct.Struct(">II")  # max_result_bytes, cpu_s
_STATUS = struct.Struct(">iQ")  # wait status, max RSS in KiB


class Zygote:
    """The runner's handle on a zygote process."""

    def __init__(self, uid, code, handler, deps):
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        code_r, code_w = os.pipe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs_fd = theirs.detach()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                zygote_main(uid, (out_w, err_w, res_w, code_r, theirs_fd), len(code), handler, deps)
            finally:
                os._exit(72)
        for fd in (out_w, err_w, res_w, code_r, theirs_fd):
            os.close(fd)
        self.ctrl = ours
        self.out_r, self.err_r, self.res_r = out_r, err_r, res_r
        self.job_pid = None
        self.status = None
        self.waiting = False
        self.baseline = None
        try:
            write_all(code_w, code)
        except BrokenPipeError:
            pass
        finally:
            os.close(code_w)

    # -- initialisation -----------------------------------------------------------

    def initialise(self, relay, deadline, wake_r):
        """Relay the module's output until it reports; -> (ok, report bytes for the ``I`` frame)."""
        report = bytearray()
        open_fds = {self.out_r, self.err_r, self.res_r}
        while self.res_r in open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._failed("InitTimeout", "the module's initialisation did not finish in time")
            try:
                ready, _, _ = select.select([wake_r, *open_fds], [], [], remaining)
            except InterruptedError:
                continue
            for fd in ready:
                if fd == wake_r:
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
                elif fd == self.res_r:
                    data = os.read(fd, 65536)
                    if not data:
                        open_fds.discard(fd)
                    elif len(report) < MAX_INIT_REPORT:
                        report += data[: MAX_INIT_REPORT - len(report)]
                elif not relay(fd):
                    open_fds.discard(fd)
            if not ready and self._dead():
                break
        for fd in open_fds - {self.res_r}:  # what the module printed last, already in the pipe
            os.set_blocking(fd, False)
            try:
                while relay(fd):
                    pass
            except BlockingIOError:
                pass
        for fd in (self.out_r, self.err_r, self.res_r):
            os.close(fd)
        if report[:1] != b"1" or self._dead():
            if report[:1] == b"0":
                return False, bytes(report)
            return self._failed("InitFailed", "the module's initialisation ended its process")
        self.baseline = self._fingerprint()
        return True, bytes(report)

    def _failed(self, etype, message):
        return False, b"0" + pychild.error_payload(etype, message, "").encode()

    def _dead(self):
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return True
        return pid == self.pid

    # -- jobs -----------------------------------------------------------------

    def start_job(self, max_result, cpu_s):
        """Ask for a job process; -> (out_r, err_r, res_r, body_w). Its status comes by :meth:`poll`."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        body_r, body_w = os.pipe()
        ends = [out_w, err_w, res_w, body_r]
        self.job_pid, self.status, self.waiting = None, None, True
        try:
            socket.send_fds(self.ctrl, [_START.pack(max_result, cpu_s)], ends)
        except OSError:
            self.waiting = False  # the zygote is gone: the pipes report EOF and the job fails
        for fd in ends:
            os.close(fd)
        return out_r, err_r, res_r, body_w

    def poll(self, block_s=0.0):
        """The job's (wait status, max RSS KiB) once the zygote has reaped it, else None."""
        deadline = time.monotonic() + block_s
        while self.waiting:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.ctrl], [], [], max(remaining, 0))
            if not ready:
                return None
            try:
                message = self.ctrl.recv(64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                message = b""
            if not message:  # the zygote died
                self.waiting = False
                self.status = (signal.SIGKILL, None)
            elif message[:1] == b"P" and len(message) == 5:
                self.job_pid = struct.unpack(">I", message[1:])[0]
            elif message[:1] == b"S" and len(message) == 1 + _STATUS.size:
                status, rss = _STATUS.unpack(message[1:])
                self.waiting = False
                self.status = (status, rss or None)
        return self.status

    def settle(self):
        """After the sweep: the zygote must report the job's end (it reaps its own children)."""
        if self.waiting and self.poll(STATUS_WAIT_S) is None:
            return ["the zygote did not report its job's end"]
        return []

    # -- a job must not have changed it ---------------------------------------------

    def _fingerprint(self):
        try:
            with open("/proc/%d/stat" % self.pid) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open("/proc/%d/limits" % self.pid) as fh:
                limits = fh.read()
            with open("/proc/%d/status" % self.pid) as fh:
                allowed = [line for line in fh if line.startswith("Cpus_allowed_list")]
        except (OSError, IndexError):
            return None
        # fields (from "state"): 0 state, 16 nice, 38 rt_priority, 39 policy
        return {
            "state": fields[0],
            "nice": fields[16],
            "sched": (fields[38], fields[39]),
            "limits": limits,
            "allowed": allowed,
        }

    def problems(self):
        if self._dead():
            return ["the zygote died"]
        now = self._fingerprint()
        if now is None or self.baseline is None:
            return ["the zygote cannot be inspected"]
        keys = ("nice", "sched", "limits", "allowed")
        problems = ["zygote %s changed" % key for key in keys if now[key] != self.baseline[key]]
        if now["state"] not in ("S", "R"):
            problems.append("the zygote is in state %s" % now["state"])
        return problems


# --------------------------------------------------------------------------
# The zygote process
# --------------------------------------------------------------------------


def _place(fds):
    """Put ``fds`` at 1, 2, 3... (0 becomes /dev/null) and close everything else."""
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]  # out of the way of the targets first
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    for target, fd in enumerate(moved, start=1):
        os.dup2(fd, target)
    os.closerange(len(fds) + 1, MAX_FD)


def zygote_main(uid, fds, code_size, handler_name, deps):
    # fds: 1 stdout, 2 stderr, 3 init report, 4 code, 5 control socket
    os.setsid()
    _place(fds)
    pychild.reset_signals()
    os.chdir("/tmp")
    drop_to_job_uid(uid)
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
    found = []
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
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 64, 4)
        except InterruptedError:
            continue
        if not message or len(fds) != 4 or len(message) != _START.size:
            os._exit(0)  # the runner is gone or confused: never guess
        max_result, cpu_s = _START.unpack(message)
        pid = os.fork()
        if pid == 0:
            try:
                _job(fds, fn, max_result, cpu_s)
            finally:
                os._exit(73)
        for fd in fds:
            os.close(fd)
        sock.send(b"P" + struct.pack(">I", pid))
        while True:
            try:
                _, status, usage = os.wait4(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                status, usage = 0, None
                break
        sock.send(b"S" + _STATUS.pack(status, usage.ru_maxrss if usage else 0))


def _job(fds, fn, max_result, cpu_s):
    """A job process: a fork of the initialised zygote, with the job's own pipes and nothing else."""
    _place(fds)  # 1 stdout, 2 stderr, 3 result, 4 arguments
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
    pychild.call_and_report(lambda: fn, args if isinstance(args, (list, dict)) else [args], 3, max_result)
