"""A durable run's record channel in the runner: records relayed to the host, its answers passed back."""

import os
import struct
import sys

from .wire import read_exact, write_all, write_frame

_records = bytearray(0)
RECORD_SLACK = 65536  # a record's own fields beside the step's result


class Records:
    """A durable run's record channel: the job process sends length-prefixed records on ``ctl``; each
    is relayed whole to the host as an ``S`` frame (masked like output), and each ``A`` frame the host
    answers with (read from stdin, one per record) is passed back. The runner parses nothing of a
    record; one longer than the result cap plus RECORD_SLACK is skipped and relayed empty (the host
    refuses it). The runner's end is non-blocking: a process that does not read its answers loses
    the channel, never stalls the runner. Records pass through one preallocated buffer, zeroed after."""

    def __init__(self, ctl, max_result, caps):
        global _records
        self.ctl = ctl
        self.max = max_result + RECORD_SLACK
        if len(_records) < self.max + 4:
            _records = bytearray(self.max + 4)
        self.buf = memoryview(_records)
        self.fill = 0
        self.used = 0  # how far the buffer was written: zeroed up to there after the job
        self.skip = 0
        self.answers_due = 0
        self.caps = caps

    def fds(self):
        return ([self.ctl] if self.ctl is not None else []) + ([0] if self.answers_due else [])

    def owns(self, fd):
        return fd == 0 or fd == self.ctl

    def read(self, fd):
        if fd == 0:
            self._answer()
        else:
            self._take()

    def _take(self):
        try:
            n = os.readv(self.ctl, [self.buf[self.fill :]]) if self.fill < len(self.buf) else 0
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if n == 0:
            self._close_ctl()
            return
        self.fill += n
        self.used = max(self.used, self.fill)
        self._relay()

    def _relay(self):
        """Send every whole record in the buffer; keep the start of the next."""
        start = 0
        while True:
            if self.skip:
                drop = min(self.skip, self.fill - start)
                self.skip -= drop
                start += drop
                if self.skip:
                    break
            if self.fill - start < 4:
                break
            (size,) = struct.unpack_from(">I", self.buf, start)
            if size > self.max:
                self.skip = size
                start += 4
                self._send(b"")
                continue
            if self.fill - start - 4 < size:
                break
            record = self.buf[start + 4 : start + 4 + size]
            self._send(self.caps.masker.mask(record) if self.caps.masker is not None else record)
            start += 4 + size
        if start:
            left = self.fill - start
            self.buf[:left] = self.buf[start : self.fill]
            self.fill = left

    def _send(self, record):
        write_frame(b"S", record)
        self.answers_due += 1

    def _answer(self):
        kind, size = struct.unpack(">cI", read_exact(0, 5))
        if kind != b"A":
            sys.stderr.write("runner: expected the host's answer to a record\n")
            os._exit(3)
        answer = read_exact(0, size)
        self.answers_due -= 1
        if self.ctl is None:
            return
        try:
            write_all(self.ctl, struct.pack(">I", size) + answer)
        except OSError:  # full (it does not read its answers) or gone: it loses the channel
            self._close_ctl()

    def _close_ctl(self):
        if self.ctl is not None:
            try:
                os.close(self.ctl)
            except OSError:
                pass
            self.ctl = None

    def close(self):
        self._close_ctl()
        self.buf[: self.used] = bytes(self.used)
        self.fill = self.used = 0
