"""A cell: one hardened container running the runner, bound to one tenant and limit profile.

Container flags, and why each is there:

* ``network_mode=none``: user code gets no network at all, not even loopback to the host.
* ``read_only`` root and a ``noexec,nosuid`` size-capped tmpfs on ``/tmp``: the only
  writable place is small, emptied after every job, and cannot hold binaries to exec.
* memory limit with swap equal to it: the limit is real, no swapping past it.
* ``nano_cpus``, ``pids_limit``, ``nofile``/``fsize`` ulimits: bounded CPU, no fork bomb,
  bounded descriptors and file sizes.
* ``cap_drop=ALL`` plus only what the runner needs to keep jobs away from itself
  (SETUID/SETGID/SETPCAP to start each job as the tenant's own uid with no
  capabilities and an empty bounding set, KILL to end every job process); the
  runner leaves root for its own per-tenant uid as soon as the cell is bound.
  ``no-new-privileges``: no setuid binary or file capability can raise them again.
* the project's seccomp allowlist (``sandbox/seccomp.py``), not the engine's default.
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
from collections.abc import Callable

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit

from . import protocol, seccomp, verdicts
from .exceptions import SandboxError
from .spec import Limits, OutputLine, RunResult, RunSpec

LABEL = "lambdasite.sandbox"
HELLO_TIMEOUT_S = 20.0
GUARD_S = 2.0
CANCEL_POLL_S = (
    0.25  # the runner enforces the timeout; the host kills the cell if it has not answered by then
)
LATE_OUTPUT_S = 0.25  # output still arriving this long after the job's time limit is counted, not stored
SEND_TIMEOUT_S = 30.0  # a request is written to a runner that is ready to read it
CLEAN_WAIT_S = 15.0  # the runner's report that the previous job left nothing behind
RUNNER_CAPS = ["SETUID", "SETGID", "SETPCAP", "KILL"]
OnOutput = Callable[[list[OutputLine]], None]


def container_config(runtime: str, image: str, limits: Limits, labels: dict) -> dict:
    mb = 1024 * 1024
    return {
        "image": image,
        "user": "0:0",  # the runner drops to its tenant's uid when bound; jobs never run as root
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
        "cap_add": RUNNER_CAPS,
        "security_opt": ["no-new-privileges", "seccomp=" + seccomp.profile_json()],
        "log_config": LogConfig(type="none"),
        "ipc_mode": "private",
    }


class CellUnusable(Exception):
    """The cell did not report itself clean after its previous job: take another one."""


class Cell:
    """A started container whose runner answers requests; run jobs with :meth:`execute`."""

    def __init__(
        self, client: docker.DockerClient, runtime: str, image: str, limits: Limits, labels: dict
    ) -> None:
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
        self.problems: list[str] = []  # why the runner refused to vouch for itself
        self._clean_pending = False
        self._cancel: threading.Event | None = None

    @property
    def id(self) -> str:
        return self.container.id if self.container is not None else ""

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Cell:
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
        except (APIError, DockerException, OSError, _CellDied, _GuardExpired) as exc:
            self.destroy()
            raise SandboxError(
                f"could not start a {self.runtime} cell: {exc}", code="engine_unavailable"
            ) from exc
        except SandboxError:
            self.destroy()
            raise
        self.start_ms = (time.monotonic() - t0) * 1000.0
        return self

    def retire(self) -> None:
        """Never use this cell again; :meth:`destroy` removes its container (the pool, off the job path)."""
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

    def await_clean(self, timeout: float = CLEAN_WAIT_S) -> bool:
        """Whether the runner vouched that the previous job left nothing behind; retires the cell if not.

        After each job the runner kills what is left, cleans up and compares its state
        with the state at binding, then sends a ``C`` frame before it reads the next
        request. Normally that frame is long there when the next job comes."""
        if self.broken:
            return False
        if not self._clean_pending:
            return True
        self._cancel = None
        try:
            kind, payload = self._next_frame(time.monotonic() + timeout)
            report = json.loads(payload) if kind == b"C" else {"problems": [f"unexpected frame {kind!r}"]}
        except (_CellDied, _GuardExpired, ValueError, OSError) as exc:
            report = {"problems": [f"no report from the runner ({type(exc).__name__})"]}
        self._clean_pending = False
        if not isinstance(report, dict) or report.get("clean") is not True:
            problems = report.get("problems") if isinstance(report, dict) else None
            self.problems = (
                [str(p)[:200] for p in problems] if isinstance(problems, list) else ["unreadable report"]
            )
            self.retire()
            return False
        return True

    # -- one job -----------------------------------------------------------

    def execute(
        self, spec: RunSpec, on_output: OnOutput | None = None, cancel: threading.Event | None = None
    ) -> RunResult:
        """Run one job; the cell stays usable only if ``self.broken`` is False afterwards."""
        if not self.await_clean():
            raise CellUnusable(", ".join(self.problems))
        limits = spec.limits
        body = json.dumps({"code": spec.code, "handler": spec.handler, "args": spec.args}).encode(
            "utf-8", "surrogatepass"
        )
        meta = {
            "uid": spec.job_uid,
            "timeout_ms": limits.timeout_ms,
            "max_log_bytes": limits.max_log_bytes,
            "max_log_lines": limits.max_log_lines,
            "max_result_bytes": limits.max_result_bytes,
            "cpu_s": limits.timeout_ms // 1000 + 2,
        }
        lines = protocol.LineSplitter(max_lines=limits.max_log_lines)
        deliver = on_output or (lambda batch: None)
        reused = self.jobs_run > 0
        self.jobs_run += 1
        t0 = time.monotonic()
        deadline = t0 + limits.timeout_ms / 1000.0 + GUARD_S
        # Output is relayed as fast as this side reads it; what the pipe between runner and
        # host still holds when the job's time is up is skipped past, not split and stored,
        # so the verdict comes within LATE_OUTPUT_S of the limit however slow storing is.
        late_after = t0 + limits.timeout_ms / 1000.0 + LATE_OUTPUT_S
        late_bytes = 0
        result_frame = None
        capped = False
        self._cancel = cancel
        try:
            # the previous read may have left a short poll timeout on the socket
            self.sock.settimeout(SEND_TIMEOUT_S)
            self.sock.sendall(protocol.encode_request(meta, body))
            while True:
                kind, payload = self._next_frame(deadline)
                if kind in protocol.STREAM_NAMES:
                    if late_bytes or time.monotonic() > late_after:
                        late_bytes += len(payload)
                    else:
                        deliver(lines.feed(protocol.STREAM_NAMES[kind], payload))
                elif kind == b"T":
                    capped = True
                    deliver(
                        lines.flush()
                        + [
                            lines.system(
                                f"[lambdasite] output reached the log limit ({limits.max_log_bytes} bytes or "
                                f"{limits.max_log_lines} lines); further output is dropped"
                            )
                        ]
                    )
                elif kind == b"R":
                    result_frame = payload
                elif kind == b"X":
                    summary = verdicts.summary_of(payload)
                    break
                else:
                    raise SandboxError(f"runner sent an unknown frame {kind!r}", code="protocol_error")
        except _CellDied as died:
            deliver(lines.flush())
            self.retire()
            return verdicts.from_engine(
                died.state or {},
                limits,
                ran_ms=(time.monotonic() - t0) * 1000.0,
                lines=lines.count,
                container_id=self.id,
                reused=reused,
                about=f"cell {self.name} ({bytes(self.runner_stderr[-500:]).decode('utf-8', 'replace')})",
            )
        except _Cancelled:
            deliver(lines.flush() + [lines.system("[lambdasite] cancelled")])
            self.retire()  # whatever the job was doing dies with the container
            return RunResult(
                status="cancelled",
                error=verdicts.error("Cancelled", "the job was cancelled while running"),
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
                error=verdicts.error("Timeout", f"exceeded the {limits.timeout_ms} ms time limit"),
                duration_ms=(time.monotonic() - t0) * 1000.0,
                lines=lines.count,
                container_id=self.id,
                reused=reused,
            )
        except (SandboxError, OSError) as exc:
            self.retire()
            if isinstance(exc, SandboxError):
                exc.ran_ms = (time.monotonic() - t0) * 1000.0
                raise
            raise SandboxError(
                f"lost the cell's stream: {exc}", code="cell_failed", ran_ms=(time.monotonic() - t0) * 1000.0
            ) from exc
        self._clean_pending = True
        deliver(lines.flush())
        self.last_used = time.monotonic()
        result = verdicts.from_summary(
            summary, result_frame, limits, lines=lines.count, container_id=self.id, reused=reused
        )
        if late_bytes:
            lines.dropped_bytes += late_bytes
            deliver(
                [
                    lines.system(
                        f"[lambdasite] {late_bytes} bytes of output still in transit at the time limit "
                        f"were not stored"
                    )
                ]
            )
        if lines.dropped_bytes and not capped:
            deliver(
                [
                    lines.system(
                        f"[lambdasite] output reached the log limit ({limits.max_log_lines} lines); "
                        f"further output is dropped"
                    )
                ]
            )
        dropped = result.dropped_bytes + lines.dropped_bytes
        if dropped:
            deliver([lines.system(f"[lambdasite] {dropped} bytes of output over the limit were dropped")])
        result = _replace(
            result,
            lines=lines.count,
            dropped_bytes=dropped,
            log_bytes=max(0, result.log_bytes - lines.dropped_bytes),
        )
        if result.status != "succeeded" and (result_frame is None or summary.get("oom")):
            # the child died without reporting: never trust this cell again
            self.retire()
        return result

    # -- reading -----------------------------------------------------------

    def _next_frame(self, deadline: float) -> tuple[bytes, bytes]:
        cancel = self._cancel
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


def _replace(result: RunResult, **changes) -> RunResult:
    from dataclasses import replace

    return replace(result, **changes)
