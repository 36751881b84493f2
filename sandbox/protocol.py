"""Wire formats: Docker's multiplexed attach stream, the runner's frames, and output lines."""

from __future__ import annotations

import json
import struct
import time
from typing import Any

from .exceptions import SandboxError
from .spec import OutputLine, RunSpec

DOCKER_HEADER = struct.Struct(">BxxxI")
FRAME_HEADER = struct.Struct(">cI")
MAX_LINE_BYTES = 16384  # a longer line (or one without newline) is cut into pieces of this size
STREAM_NAMES = {b"1": "stdout", b"2": "stderr"}
INIT_TIMEOUT_MS = 10_000  # a function's module initialisation, apart from the job's own time limit
MAX_HEADER_BYTES = 1 << 22  # the runner reads no longer request header (limits, configuration, secrets)


def encode_request(meta: dict, body: bytes) -> bytes:
    head = json.dumps({**meta, "body": len(body)}).encode("utf-8", "surrogatepass")
    if len(head) > MAX_HEADER_BYTES:
        raise SandboxError(f"the request's header is over {MAX_HEADER_BYTES} bytes", code="protocol_error")
    return FRAME_HEADER.pack(b"J", len(head)) + head + body


def job_request(spec: RunSpec, *, with_code: bool, warm: bool = False) -> bytes:
    """The request for one job (or, ``warm``, only a function's initialisation).

    A snippet's body is ``{"code", "handler", "args"}`` as JSON. A function's body is
    its module's code (only when the cell has not loaded it: ``with_code``), then
    the arguments as JSON; the runner learns the split from ``code_bytes``."""
    limits = spec.limits
    meta = {
        "uid": spec.job_uid,
        "timeout_ms": limits.timeout_ms,
        "max_log_bytes": limits.max_log_bytes,
        "max_log_lines": limits.max_log_lines,
        "max_result_bytes": limits.max_result_bytes,
        "cpu_s": limits.timeout_ms // 1000 + 2,
    }
    # over the runner's channel, never the container's environment: the job's configuration, its
    # secrets (the runner masks them in the output) and whether the door's relay is wanted
    if spec.egress.enabled:
        meta["egress"] = True
    if spec.env:
        meta["env"] = dict(spec.env)
    if spec.secrets:
        meta["secrets"] = [[secret.name, secret.value] for secret in spec.secrets]
    args = spec.args
    durable = None
    if spec.durable is not None:
        # a durable run's context: its id and journal travel with the arguments, in the body
        meta["durable"] = True
        durable = {"run": spec.durable.run, "journal": list(spec.durable.journal)}
    function = spec.function
    if function is None:
        request = {"code": spec.code, "handler": spec.handler, "args": args}
        if durable is not None:
            request["durable"] = durable
        return encode_request(meta, json.dumps(request).encode("utf-8", "surrogatepass"))
    if durable is not None:
        args = {"args": args, "durable": durable}
    meta["fn"] = {"key": function.key, "handler": function.handler, "deps": function.layer is not None}
    meta["init_timeout_ms"] = INIT_TIMEOUT_MS
    code = function.code.encode("utf-8", "surrogatepass") if with_code else b""
    if with_code:
        meta["code_bytes"] = len(code)
    if warm:
        meta["warm"] = True
        return encode_request(meta, code)
    return encode_request(meta, code + json.dumps(args).encode("utf-8", "surrogatepass"))


def encode_answer(answer: dict) -> bytes:
    """The host's answer to a durable run's record (an ``A`` frame on the runner's stdin)."""
    data = json.dumps(answer, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return FRAME_HEADER.pack(b"A", len(data)) + data


class DockerDemux:
    """Splits Docker's attach stream (no TTY) into the container's stdout and stderr bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        self._buf += data
        out, err = bytearray(), bytearray()
        while len(self._buf) >= DOCKER_HEADER.size:
            stream, size = DOCKER_HEADER.unpack_from(self._buf)
            if len(self._buf) < DOCKER_HEADER.size + size:
                break
            payload = self._buf[DOCKER_HEADER.size : DOCKER_HEADER.size + size]
            del self._buf[: DOCKER_HEADER.size + size]
            (err if stream == 2 else out).extend(payload)
        return bytes(out), bytes(err)


class FrameReader:
    """Parses the runner's frames out of the container's stdout bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buf += data
        frames = []
        while len(self._buf) >= FRAME_HEADER.size:
            kind, size = FRAME_HEADER.unpack_from(self._buf)
            if len(self._buf) < FRAME_HEADER.size + size:
                break
            frames.append((kind, bytes(self._buf[FRAME_HEADER.size : FRAME_HEADER.size + size])))
            del self._buf[: FRAME_HEADER.size + size]
        return frames


class LineSplitter:
    """Turns stdout/stderr byte chunks into numbered lines; invalid UTF-8 is replaced, not fatal.

    At most ``max_lines`` output lines are made (the runner counts newlines too, but a
    line longer than MAX_LINE_BYTES becomes several here); the bytes of any further
    line are counted in ``dropped_bytes`` and never become rows."""

    def __init__(self, first_seq: int = 1, max_lines: int = -1) -> None:
        self._partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.seq = first_seq - 1
        self.count = 0
        self.max_lines = max_lines
        self.output_lines = 0
        self.dropped_bytes = 0

    def feed(self, stream: str, data: bytes) -> list[OutputLine]:
        if self._full():
            self.dropped_bytes += len(data)
            return []
        buf = self._partial[stream]
        buf += data
        lines = []
        while True:
            cut = buf.find(b"\n")
            if cut < 0 and len(buf) < MAX_LINE_BYTES:
                break
            end = cut if 0 <= cut < MAX_LINE_BYTES else min(len(buf), MAX_LINE_BYTES)
            raw = bytes(buf[:end])
            del buf[: end + 1 if end == cut else end]
            lines.append(self._line(stream, raw))
            self.output_lines += 1
            if self._full():
                self.dropped_bytes += sum(len(b) for b in self._partial.values())
                for pending in self._partial.values():
                    pending.clear()
                break
        return lines

    def _full(self) -> bool:
        return 0 <= self.max_lines <= self.output_lines

    def flush(self) -> list[OutputLine]:
        lines = []
        for stream, buf in self._partial.items():
            if buf and not self._full():
                lines.append(self._line(stream, bytes(buf)))
                self.output_lines += 1
            elif buf:
                self.dropped_bytes += len(buf)
            buf.clear()
        return lines

    def system(self, text: str) -> OutputLine:
        return self._line("system", text.encode())

    def _line(self, stream: str, raw: bytes) -> OutputLine:
        self.seq += 1
        self.count += 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return OutputLine(
            stream=stream,
            seq=self.seq,
            ts=time.time(),
            text=raw.decode("utf-8", "replace").replace("\x00", "\ufffd"),
        )


def decode_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8", "replace"))
