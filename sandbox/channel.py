"""A cell's channel: the container's attach socket, read as Docker's multiplexed stream and split into
the runner's frames, with the deadline, cancel check and death detection every read needs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from . import protocol

CANCEL_POLL_S = 0.25  # how often a read checks for cancellation
SEND_TIMEOUT_S = 30.0  # a request is written to a runner that is ready to read it


class _GuardExpired(Exception):
    """The host's own deadline passed without the runner's answer."""


class _Cancelled(Exception):
    pass


class _CellDied(Exception):
    def __init__(self, state: dict) -> None:
        super().__init__("cell died")
        self.state = state


class Channel:
    def __init__(self, sock: socket.socket, final_state: Callable[[], dict]) -> None:
        self.sock = sock
        self._final_state = final_state  # the engine's account, asked when the stream ends
        self._demux = protocol.DockerDemux()
        self._frames = protocol.FrameReader()
        self._pending: list[tuple[bytes, bytes]] = []
        self.runner_stderr = bytearray()

    def send(self, data: bytes) -> None:
        # the previous read may have left a short poll timeout on the socket
        self.sock.settimeout(SEND_TIMEOUT_S)
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def stderr_tail(self) -> str:
        return bytes(self.runner_stderr[-500:]).decode("utf-8", "replace")

    def next_frame(self, deadline: float, cancel: threading.Event | None = None) -> tuple[bytes, bytes]:
        # checked on every frame, not only when none is buffered: a flood of output
        # must not carry a job past its limit
        if time.monotonic() > deadline:
            raise _GuardExpired()
        while not self._pending:
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _GuardExpired()
            self.sock.settimeout(min(remaining, CANCEL_POLL_S) if cancel is not None else remaining)
            try:
                data = self.sock.recv(262144)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                raise _CellDied(self._final_state())
            out, err = self._demux.feed(data)
            if err:
                self.runner_stderr += err[-4096:]
                del self.runner_stderr[:-8192]
            if out:
                self._pending.extend(self._frames.feed(out))
        return self._pending.pop(0)
