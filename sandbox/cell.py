"""A cell: one hardened container running the runner, bound to one tenant and limit profile.

Container flags, and why each is there:

* ``network_mode=none``: user code gets no network at all, not even loopback to the host.
* ``read_only`` root and a ``noexec,nosuid`` size-capped tmpfs on ``/tmp``: the only
  writable place is small, emptied after every job, and cannot hold binaries to exec.
* memory limit with swap equal to it: the limit is real, no swapping past it.
* ``nano_cpus``, ``pids_limit``, ``nofile``/``fsize`` ulimits: bounded CPU, no fork bomb,
  bounded descriptors and file sizes.
* ``cap_drop=ALL``, ``no-new-privileges``, a non-root uid: nothing to escalate with.
* no host mounts, an empty environment, ``log_config=none`` (output goes over the
  attach stream only, so a flood never fills the engine's log files).
* labels naming the owner process and tenant so orphans can be found and removed.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from typing import Callable

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit

from . import protocol
from .exceptions import SandboxError
from .spec import Limits, OutputLine, RunResult, RunSpec

LABEL = "lambdasite.sandbox"
HELLO_TIMEOUT_S = 20.0
GUARD_S = 3.0
CANCEL_POLL_S = 0.25  # the runner enforces the timeout; the host kills the cell if it has not answered by then
OnOutput = Callable[[list[OutputLine]], None]


def container_config(runtime: str, image: str, limits: Limits, labels: dict) -> dict:
    mb = 1024 * 1024
    return {
        "image": image,
        "user": "10001:10001",
        "working_dir": "/tmp",
        "stdin_open": True,
        "tty": False,
        "network_disabled": True,
        "hostname": "sandbox",
        "environment": {"LAMBDASITE_RUNTIME": runtime},
        "labels": {LABEL: "1", **{k: str(v) for k, v in labels.items()}},
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={limits.tmpfs_mb}m,mode=1777"},
        "shm_size": 4 * mb,
        "mem_limit": limits.memory_mb * mb,
        "memswap_limit": limits.memory_mb * mb,
        "nano_cpus": int(limits.cpus * 1e9),
        "pids_limit": limits.pids,
        "ulimits": [
            Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
            Ulimit(name="fsize", soft=limits.fsize_mb * mb, hard=limits.fsize_mb * mb),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "log_config": LogConfig(type="none"),
        "ipc_mode": "private",
    }


class Cell:
    """A started container whose runner answers requests; run jobs with :meth:`execute`."""

    def __init__(self, client: docker.DockerClient, runtime: str, image: str, limits: Limits, labels: dict) -> None:
        self.client = client
        self.runtime = runtime
        self.image = image
        self.limits = limits
        self.profile = (runtime, limits.profile())
        self.labels = labels
        self.name = f"lambdasite-{runtime}-{uuid.uuid4().hex[:12]}"
        self.container = None
        self.sock: socket.socket | None = None
        self._demux = protocol.DockerDemux()
        self._frames = protocol.FrameReader()
        self._pending: list[tuple[bytes, bytes]] = []
        self.runner_stderr = bytearray()
        self.jobs_run = 0
        self.created_at = time.monotonic()
        self.last_used = self.created_at
        self.start_ms = 0.0
        self.broken = False
        self._cancel: threading.Event | None = None

    @property
    def id(self) -> str:
        return self.container.id if self.container is not None else ""

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "Cell":
        t0 = time.monotonic()
        kwargs = container_config(self.runtime, self.image, self.limits, self.labels)
        try:
            self.container = self.client.containers.create(name=self.name, detach=True, **kwargs)
            raw = self.client.api.attach_socket(
                self.container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self.sock = getattr(raw, "_sock", raw)
            self.container.start()
            kind, payload = self._next_frame(time.monotonic() + HELLO_TIMEOUT_S)
            if kind != b"H":
                raise SandboxError(f"runner sent {kind!r} instead of hello", code="protocol_error")
        except ImageNotFound as exc:
            self.destroy()
            raise SandboxError(
                f"runtime image {self.image} is missing: run `python manage.py sandbox_build`",
                code="image_missing",
            ) from exc
        except (APIError, DockerException, OSError) as exc:
            self.destroy()
            raise SandboxError(f"could not start a {self.runtime} cell: {exc}", code="engine_unavailable") from exc
        except SandboxError:
            self.destroy()
            raise
        self.start_ms = (time.monotonic() - t0) * 1000.0
        return self

    def retire(self) -> None:
        """Never use this cell again; its container is removed by :meth:`destroy` (the pool does it off the job path)."""
        self.broken = True
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def destroy(self) -> None:
        self.retire()
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except NotFound:
                pass
            except (APIError, DockerException):
                pass  # the orphan sweeper finds it by label

    # -- one job -----------------------------------------------------------

    def execute(self, spec: RunSpec, on_output: OnOutput | None = None, cancel: threading.Event | None = None) -> RunResult:
        """Run one job; the cell stays usable only if ``self.broken`` is False afterwards."""
        limits = spec.limits
        body = json.dumps({"code": spec.code, "handler": spec.handler, "args": spec.args}).encode()
        meta = {
            "timeout_ms": limits.timeout_ms,
            "max_log_bytes": limits.max_log_bytes,
            "max_result_bytes": limits.max_result_bytes,
            "cpu_s": limits.timeout_ms // 1000 + 2,
        }
        lines = protocol.LineSplitter()
        deliver = on_output or (lambda batch: None)
        reused = self.jobs_run > 0
        self.jobs_run += 1
        t0 = time.monotonic()
        deadline = t0 + limits.timeout_ms / 1000.0 + GUARD_S
        result_frame = None
        self._cancel = cancel
        try:
            self.sock.sendall(protocol.encode_request(meta, body))
            while True:
                kind, payload = self._next_frame(deadline)
                if kind in protocol.STREAM_NAMES:
                    deliver(lines.feed(protocol.STREAM_NAMES[kind], payload))
                elif kind == b"T":
                    deliver(lines.flush() + [lines.system(
                        f"[lambdasite] output reached the {limits.max_log_bytes}-byte log limit; "
                        "further output is dropped"
                    )])
                elif kind == b"R":
                    result_frame = payload
                elif kind == b"X":
                    summary = json.loads(payload)
                    break
        except _CellDied as died:
            deliver(lines.flush())
            self.retire()
            return self._verdict_from_engine(died, limits, lines, t0, reused)
        except _Cancelled:
            deliver(lines.flush() + [lines.system("[lambdasite] cancelled")])
            self.retire()  # whatever the job was doing dies with the container
            return RunResult(
                status="cancelled",
                error=_error("Cancelled", "the job was cancelled while running"),
                duration_ms=(time.monotonic() - t0) * 1000.0,
                lines=lines.count,
                container_id=self.id,
                reused=reused,
            )
        except _GuardExpired:
            deliver(lines.flush())
            self.retire()
            return RunResult(
                status="timed_out",
                error=_error("Timeout", f"exceeded the {limits.timeout_ms} ms time limit"),
                duration_ms=(time.monotonic() - t0) * 1000.0,
                lines=lines.count,
                container_id=self.id,
                reused=reused,
            )
        deliver(lines.flush())
        self.last_used = time.monotonic()
        result = self._verdict(summary, result_frame, limits, lines.count, reused)
        if result.dropped_bytes:
            deliver([lines.system(f"[lambdasite] {result.dropped_bytes} bytes of output over the limit were dropped")])
            result = _replace(result, lines=lines.count)
        if result.status != "succeeded" and (result_frame is None or summary.get("oom")):
            # the child died without reporting: never trust this cell again
            self.retire()
        return result

    def _verdict(self, summary: dict, result_frame: bytes | None, limits: Limits, nlines: int, reused: bool) -> RunResult:
        common = {
            "exit_code": summary.get("exit_code"),
            "duration_ms": float(summary.get("wall_ms") or 0.0),
            "cpu_ms": summary.get("cpu_ms"),
            "max_rss_kb": summary.get("max_rss_kb"),
            "log_bytes": int(summary.get("log_bytes") or 0),
            "dropped_bytes": int(summary.get("dropped_bytes") or 0),
            "lines": nlines,
            "container_id": self.id,
            "reused": reused,
        }
        if summary.get("timed_out"):
            return RunResult(status="timed_out", error=_error("Timeout", f"exceeded the {limits.timeout_ms} ms time limit"), **common)
        if summary.get("oom"):
            return RunResult(status="killed", error=_oom_error(limits), **common)
        if summary.get("result_overflow"):
            return RunResult(
                status="failed",
                error=_error("ResultTooLarge", f"result is over the {limits.max_result_bytes}-byte limit"),
                **common,
            )
        if result_frame is not None:
            try:
                message = protocol.decode_json(result_frame)
            except ValueError:
                return RunResult(status="failed", error=_error("CorruptResult", "the function wrote an unreadable result"), **common)
            if isinstance(message, dict) and message.get("ok") is True:
                return RunResult(status="succeeded", result=message.get("result"), **common)
            if isinstance(message, dict) and isinstance(message.get("error"), dict):
                err = message["error"]
                return RunResult(
                    status="failed",
                    error=_error(str(err.get("type", "Error")), str(err.get("message", "")), str(err.get("traceback", ""))),
                    **common,
                )
            return RunResult(status="failed", error=_error("CorruptResult", "the function wrote an unreadable result"), **common)
        sig = summary.get("signal")
        if sig == 24 or (sig == 9 and (summary.get("cpu_ms") or 0) >= (limits.timeout_ms // 1000 + 2) * 1000):
            return RunResult(status="timed_out", error=_error("CpuTimeExceeded", "exceeded the CPU time limit"), **common)
        if sig:
            return RunResult(status="failed", error=_error("ProcessKilled", f"the function's process was killed by signal {sig}"), **common)
        return RunResult(
            status="failed",
            error=_error("ProcessExited", f"the function's process exited with code {summary.get('exit_code')} before returning"),
            **common,
        )

    def _verdict_from_engine(self, died: "_CellDied", limits: Limits, lines, t0: float, reused: bool) -> RunResult:
        """The whole container died mid-job: ask the engine why (OOM report and exit code)."""
        state = died.state or {}
        exit_code = state.get("ExitCode")
        common = {
            "exit_code": exit_code,
            "duration_ms": (time.monotonic() - t0) * 1000.0,
            "lines": lines.count,
            "container_id": self.id,
            "reused": reused,
        }
        if state.get("OOMKilled") or exit_code == 137:
            return RunResult(status="killed", error=_oom_error(limits), **common)
        raise SandboxError(
            f"cell {self.name} died (exit {exit_code}): {bytes(self.runner_stderr[-500:]).decode('utf-8', 'replace')}",
            code="cell_failed",
        )

    # -- reading -----------------------------------------------------------

    def _next_frame(self, deadline: float) -> tuple[bytes, bytes]:
        cancel = self._cancel
        while not self._pending:
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _GuardExpired()
            self.sock.settimeout(min(remaining, CANCEL_POLL_S) if cancel is not None else remaining)
            try:
                data = self.sock.recv(262144)
            except socket.timeout:
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

    def _final_state(self) -> dict:
        if self.container is None:
            return {}
        try:
            self.client.api.wait(self.container.id, timeout=5)
            return self.client.api.inspect_container(self.container.id).get("State", {})
        except Exception:  # noqa: BLE001 - diagnosis only
            return {}


class _GuardExpired(Exception):
    pass


class _Cancelled(Exception):
    pass


class _CellDied(Exception):
    def __init__(self, state: dict) -> None:
        super().__init__("cell died")
        self.state = state


def _error(etype: str, message: str, traceback: str = "") -> dict:
    return {"type": etype, "message": message, "traceback": traceback}


def _oom_error(limits: Limits) -> dict:
    return _error("MemoryLimitExceeded", f"exceeded the {limits.memory_mb} MB memory limit and was killed")


def _replace(result: RunResult, **changes) -> RunResult:
    from dataclasses import replace

    return replace(result, **changes)
