"""A Python function's zygote: runs the module's initialisation once; every job is a fresh fork of it.

Runner side: :class:`Zygote` starts it, relays its initialisation output, asks it
for a job process per job (passing the job's pipes over a socket) and checks
after every job that the job changed nothing about it. Zygote side:
:func:`zygote_process.zygote_main`. The zygote runs as the job uid (it runs user code: the
module), is non-dumpable and blocks every signal it can once initialised, and
refuses an initialisation that leaves threads, child processes, open
descriptors or shared writable memory behind, since each would carry one job's
writes to the next."""

import os
import select
import signal
import socket
import struct
import time

from . import pychild
from .wire import control_pair, job_pipes, read_wakeups, write_all
from .zygote_process import START as _START
from .zygote_process import STATUS as _STATUS
from .zygote_process import zygote_main

MAX_INIT_REPORT = 1 << 16
STATUS_WAIT_S = 2.0


class Zygote:
    """The runner's handle on a zygote process."""

    def __init__(self, uid, function):
        code = function["code"]
        (out_r, err_r, res_r, code_w), (out_w, err_w, res_w, code_r) = job_pipes()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs_fd = theirs.detach()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                fds = (out_w, err_w, res_w, code_r, theirs_fd)
                zygote_main(uid, fds, len(code), function)
            finally:
                os._exit(72)
        for fd in (out_w, err_w, res_w, code_r, theirs_fd):
            os.close(fd)
        self.ctrl = ours
        self.out_r, self.err_r, self.res_r = out_r, err_r, res_r
        self.job_pid = None
        self.status = None
        self.waiting = False
        self.gone = False  # its control socket reached EOF: it died (whether or not it is reaped yet)
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
                    read_wakeups(wake_r)
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

    def start_job(self, max_result, cpu_s, durable=False):
        """Ask for a job process; -> (out_r, err_r, res_r, body_w, ctl). Its status comes by :meth:`poll`.
        ``durable``: the process also gets a record channel (``ctl``, the runner's end; else None)."""
        (out_r, err_r, res_r, body_w), ends = job_pipes()  # the job process gets ``ends``
        ctl = None
        if durable:
            ctl, theirs = control_pair()
            ends = (*ends, theirs)
        self.job_pid, self.status, self.waiting = None, None, True
        try:
            socket.send_fds(self.ctrl, [_START.pack(max_result, cpu_s)], ends)
        except OSError:
            self.waiting, self.gone = False, True  # the zygote is gone: the pipes report EOF, the job fails
        for fd in ends:
            os.close(fd)
        return out_r, err_r, res_r, body_w, ctl

    def prepare(self):
        """After the cleanup: let the zygote fork the next job's process ahead of time."""
        try:
            self.ctrl.send(b"W")
        except OSError:
            pass  # the zygote is gone: the next job finds out

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
                self.gone = True
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
        # the EOF first: a killed zygote closes its files before the kernel makes it a zombie, and in
        # that moment waitpid does not see it dead yet and /proc may still show it running (under load
        # the cell was once kept, and the next job waited on a dead zygote until its time limit)
        if self.gone or self._dead():
            return ["the zygote died"]
        now = self._fingerprint()
        if now is None or self.baseline is None:
            return ["the zygote cannot be inspected"]
        keys = ("nice", "sched", "limits", "allowed")
        problems = ["zygote %s changed" % key for key in keys if now[key] != self.baseline[key]]
        if now["state"] not in ("S", "R"):
            problems.append("the zygote is in state %s" % now["state"])
        return problems
