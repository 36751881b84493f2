"""One job: relay its output under the log caps, hold the wall-clock limit, send the verdict frames."""

import json
import os
import select
import signal
import time

from . import state
from .cleanup import kill_others
from .records import Records
from .wire import (
    buf,
    max_rss_kb,
    read_cpu_ns,
    read_oom_kills,
    read_wakeups,
    view,
    write_frame,
    zero_buffer,
)

_result = bytearray(0)
_job_running = False
_timer_fired = False


def on_alarm(signum, frame):
    """The wall-clock limit, even while a write to a slow host blocks the loop below."""
    global _timer_fired
    if _job_running:
        _timer_fired = True
        kill_others(state.zygote.pid if state.zygote is not None else None)


def _result_buffer(max_result):
    global _result
    wanted = max_result + 4096
    if len(_result) < wanted:
        _result = bytearray(wanted)
    return memoryview(_result)


class Caps:
    """What the job may still log: bytes and lines; ``dropped`` counts what it may not. With a
    ``masker`` (the job holds secrets) output is masked line by line before the caps apply."""

    def __init__(self, max_bytes, max_lines, masker=None):
        self.bytes_left = max_bytes
        self.lines_left = max_lines
        self.logged = 0
        self.dropped = 0
        self.told = False
        self.masker = masker

    def keep(self, n, data=buf):
        """How many of the first ``n`` bytes of ``data`` (the relay buffer) may be relayed."""
        keep = min(n, self.bytes_left)
        if self.lines_left >= 0 and keep:
            newlines = data.count(b"\n", 0, keep)
            if newlines > self.lines_left:
                pos = -1
                for _ in range(self.lines_left):
                    pos = data.find(b"\n", pos + 1, keep)
                keep = pos + 1
                newlines = self.lines_left
            self.lines_left -= newlines
            if self.lines_left == 0:
                self.bytes_left = keep  # nothing after the last allowed line
        self.bytes_left -= keep
        self.logged += keep
        self.dropped += n - keep
        return keep

    def relay(self, fd, kind):
        """Read once from an output pipe and relay what the caps allow; False at EOF."""
        n = os.readv(fd, [view])
        if self.masker is not None:
            self.send(kind, self.masker.feed(kind, view[:n]) if n else self.masker.flush(kind))
        elif n:
            self.send(kind, view[:n])
        return n != 0

    def flush(self):
        """Send what the masker still holds of a line without its end (after the job's output)."""
        if self.masker is not None:
            for kind in (b"1", b"2"):
                self.send(kind, self.masker.flush(kind))

    def send(self, kind, data):
        """Relay what the caps allow of ``data``: a view of the start of a buffer (the relay buffer, or
        the masker's), which is searched for newlines in place."""
        n = len(data)
        if not n:
            return
        keep = self.keep(n, data.obj)
        if keep:
            write_frame(kind, data[:keep])
        if keep < n and not self.told:
            self.told = True
            write_frame(b"T")


class DirectChild:
    """A job process that is the runner's own child (snippets, node): its status comes from wait4.
    ``ctl``: a durable run's record channel (the runner's end), else None."""

    status_fd = None

    def __init__(self, pid, out_r, err_r, res_r, ctl=None):
        self.pid, self.out_r, self.err_r, self.res_r, self.ctl = pid, out_r, err_r, res_r, ctl

    def poll(self):
        try:
            wpid, status, usage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 0, None
        if wpid != self.pid:
            return None
        return status, usage.ru_maxrss if usage is not None else None


class ZygoteChild:
    """A job process forked by a function's zygote: the zygote reports its status."""

    def __init__(self, zygote, out_r, err_r, res_r, ctl=None):
        self.zygote, self.out_r, self.err_r, self.res_r, self.ctl = zygote, out_r, err_r, res_r, ctl
        self.status_fd = zygote.ctrl.fileno()

    @property
    def pid(self):
        return self.zygote.job_pid

    def poll(self):
        return self.zygote.poll()


STATES = {"R": "running", "S": "sleeping", "D": "waiting on a device", "T": "stopped", "Z": "exiting"}


def process_state(pid):
    """What the job's process was doing when its time ran out: its state, CPU and threads (readable
    without ptrace), for the verdict: a job that spun differs from one that waited forever."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_ms = (int(fields[11]) + int(fields[12])) * 1000 // ticks
        return {"state": STATES.get(fields[0], fields[0]), "cpu_ms": cpu_ms, "threads": int(fields[17])}
    except (OSError, ValueError, IndexError):
        return None


def run_job(meta, start, caps, wake_r):
    """Start the job's process (``start()``, under the time limit: passing it the body may block) and
    supervise it until it reports, dies or runs out of time; then send the ``R`` and ``X`` frames."""
    global _job_running, _timer_fired
    job = Supervised(meta, caps)
    _timer_fired = False
    _job_running = True
    signal.setitimer(signal.ITIMER_REAL, job.timeout + 0.05)
    job.attach(start())
    timed_out = job.supervise(wake_r)
    _job_running = False
    signal.setitimer(signal.ITIMER_REAL, 0)
    timed_out = timed_out or _timer_fired  # killed by the timer, whatever the status said after
    caps.flush()
    result = None
    if not job.result_overflow and job.result_len and not timed_out:
        result = job.result_view[: job.result_len]
        if caps.masker is not None:  # the error's message and traceback travel in it
            result = caps.masker.mask(result)
    summary = job.summary(timed_out)
    if result is not None:
        write_frame(b"R", result)
    write_frame(b"X", json.dumps(summary).encode())
    job.close()
    return summary


class Supervised:
    """One job's process as the runner watches it: its pipes, its result so far, its exit status."""

    def __init__(self, meta, caps):
        self.caps = caps
        self.timeout = max(int(meta.get("timeout_ms") or 5000), 1) / 1000.0
        self.result_view = _result_buffer(int(meta.get("max_result_bytes") or 1 << 20))
        self.result_len = 0
        self.result_overflow = False
        self.oom_before = read_oom_kills()
        self.cpu_before = read_cpu_ns()
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout
        self.child = None
        self.status = None
        self.max_rss = None
        self.drain_until = None

    def attach(self, child):
        self.child = child
        self.streams = {child.out_r: b"1", child.err_r: b"2"}
        self.open_fds = {child.out_r, child.err_r, child.res_r}
        self.records = (
            Records(child.ctl, self.result_view.nbytes, self.caps) if child.ctl is not None else None
        )

    # -- while it runs -------------------------------------------------------------

    def supervise(self, wake_r):
        """Relay its output and result until it reports, dies or runs out of time; -> whether it ran out."""
        while True:
            if self.status is None:
                polled = self.child.poll()
                if polled is not None:
                    self.status, self.max_rss = polled
            if not self.open_fds and (self.status is not None or self.result_len):
                return False  # the child reported and closed its pipes: answer without waiting for its exit
            if _timer_fired and self.status is None:
                return True
            if self.status is not None and self._drained():
                return False
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 and self.status is None:
                return True
            try:
                ready = self._select(wake_r, remaining)
            except InterruptedError:
                continue
            if self.status is not None and not ready:
                return False
            for fd in ready:
                self._read(fd, wake_r)

    def _drained(self):
        """The child is gone: drain what is already buffered, briefly, then stop (a process it left
        behind must not keep the job open by writing). -> whether that brief time is over."""
        if self.drain_until is None:
            self.drain_until = min(time.monotonic() + 0.05, self.deadline)
            for fd in list(self.open_fds):
                os.set_blocking(fd, False)
            return False
        return time.monotonic() > self.drain_until

    def _select(self, wake_r, remaining):
        watch = [wake_r, *self.open_fds]
        if self.status is None and self.child.status_fd is not None:
            watch.append(self.child.status_fd)
        if self.records is not None:
            watch.extend(self.records.fds())
        ready, _, _ = select.select(watch, [], [], max(remaining, 0) if self.status is None else 0)
        return ready

    def _read(self, fd, wake_r):
        if fd == wake_r:
            read_wakeups(wake_r)
        elif fd == self.child.status_fd:
            pass  # read by child.poll() at the top of the loop
        elif fd == self.child.res_r:
            self._read_result(fd)
        elif self.records is not None and self.records.owns(fd):
            self.records.read(fd)
        else:
            try:
                if not self.caps.relay(fd, self.streams[fd]):
                    self.open_fds.discard(fd)
            except BlockingIOError:
                self.open_fds.discard(fd)

    def _read_result(self, fd):
        room = len(self.result_view) - self.result_len
        try:
            n = os.readv(fd, [self.result_view[self.result_len :]]) if room else os.readv(fd, [view])
        except BlockingIOError:
            self.open_fds.discard(fd)
            return
        if n == 0:
            self.open_fds.discard(fd)
        elif room:
            self.result_len += n
        else:
            self.result_overflow = True

    # -- once it is over -------------------------------------------------------------

    def summary(self, timed_out):
        """The ``X`` frame's content; a job that ran out of time is looked at, then everything is killed."""
        child, status = self.child, self.status
        wall_ms = (time.monotonic() - self.started) * 1000.0
        max_rss = max_rss_kb(child.pid) if status is None and child.pid else self.max_rss
        stuck = process_state(child.pid) if timed_out and status is None and child.pid else None
        if timed_out:
            kill_others(state.zygote.pid if state.zygote is not None else None)
        cpu_after = read_cpu_ns()
        cpu_before = self.cpu_before
        summary = {
            "wall_ms": round(wall_ms, 3),
            "log_bytes": self.caps.logged,
            "dropped_bytes": self.caps.dropped,
            "oom": read_oom_kills() > self.oom_before >= 0,
            "timed_out": timed_out,
            "exit_code": None,
            "signal": None,
            "cpu_ms": round((cpu_after - cpu_before) / 1e6, 3)
            if cpu_before >= 0 and cpu_after >= 0
            else None,
            "max_rss_kb": max_rss,
        }
        if status is not None:
            if os.WIFEXITED(status):
                summary["exit_code"] = os.WEXITSTATUS(status)
            elif os.WIFSIGNALED(status):
                summary["signal"] = os.WTERMSIG(status)
                summary["exit_code"] = 128 + os.WTERMSIG(status)
        elif self.result_len and not timed_out:
            summary["exit_code"] = 0  # it reported and is exiting; it is reaped by the sweep
        if stuck is not None:
            summary["stuck"] = stuck
        if self.result_overflow:
            summary["result_overflow"] = True
        if self.caps.masker is not None:
            summary["masked"] = self.caps.masker.count
        return summary

    def close(self):
        """Close its pipes and zero what it wrote in the runner's buffers."""
        for fd in (self.child.out_r, self.child.err_r, self.child.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.records is not None:
            self.records.close()
        self.result_view[: self.result_len] = bytes(self.result_len)
        zero_buffer()
