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
* no host mounts (a function's dependency layer is a read-only volume; a cell whose jobs
  have egress gets its own directory of the worker's egress proxy, read-only, holding the
  one socket that is its door), an empty environment (configuration and secrets come over
  the runner's channel with each request), ``log_config=none`` (output goes over the attach
  stream only, so a flood never fills the engine's log files).
* a cell whose jobs hold secrets gets a small tmpfs at ``/run/secrets``: the runner's, with
  the job's group (setgid), where the runner writes them read-only for the job's group.
* labels naming the owner process and tenant so orphans can be found and removed.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit

from . import protocol, seccomp, verdicts
from .channel import Channel, _Cancelled, _CellDied, _GuardExpired
from .exceptions import CellUnusable, SandboxError
from .jobrun import GUARD_S, JobRun, OnOutput
from .spec import Limits, RunResult, RunSpec

LABEL = "lambdasite.sandbox"
HELLO_TIMEOUT_S = 20.0
CLEAN_WAIT_S = 15.0  # the runner's report that the previous job left nothing behind
RUNNER_CAPS = ["SETUID", "SETGID", "SETPCAP", "KILL"]


def container_config(
    runtime: str,
    image: str,
    limits: Limits,
    labels: dict,
    layer: str | None = None,
    *,
    door: dict | None = None,
    secrets: tuple[int, int] | None = None,
) -> dict:
    """``door``: the egress proxy's mount for this cell; ``secrets``: (job uid, bytes) of the
    secrets its jobs hold, for their tmpfs."""
    mb = 1024 * 1024
    # a function's dependency layer: a volume built by sandbox.layers, read-only
    volumes = {layer: {"bind": "/opt/deps", "mode": "ro"}} if layer else {}
    volumes.update(door or {})
    tmpfs = {"/tmp": f"rw,nosuid,nodev,noexec,size={limits.tmpfs_mb}m,mode=1777"}
    if secrets is not None:
        uid, size = secrets
        megabytes = max(1, math.ceil(2 * size / mb))
        options = f"size={megabytes}m,mode=2750,uid={uid - 1},gid={uid}"  # the runner's, the job's group
        tmpfs["/run/secrets"] = f"rw,nosuid,nodev,noexec,{options}"
    return {
        "volumes": volumes,
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
        "tmpfs": tmpfs,
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


class Cell:
    """A started container whose runner answers requests; run jobs with :meth:`execute`."""

    def __init__(
        self,
        client: docker.DockerClient,
        runtime: str,
        image: str,
        limits: Limits,
        labels: dict,
        layer: str | None = None,
        *,
        secrets: tuple[int, int] | None = None,
    ) -> None:
        self.client = client
        self.layer = layer
        self.secrets = secrets  # (job uid, bytes): the cell's jobs hold secrets (a tmpfs for their files)
        self.door = None  # its door to the egress proxy (sandbox.egress.Door), set before start()
        self.function_key: str | None = None  # the function version whose module this cell has loaded
        self.key: tuple | None = None  # the pool's key for it (tenant, uid, profile, function version)
        self.idle_cpu_ns: int | None = None  # its CPU counter when it last became idle (see sandbox.cgroups)
        self.runtime = runtime
        self.image = image
        self.limits = limits
        self.profile = (runtime, limits.profile())
        self.labels = labels
        self.name = f"lambdasite-{runtime}-{uuid.uuid4().hex[:12]}"
        self.container = None
        self.channel: Channel | None = None
        self.jobs_run = 0
        self.created_at = time.monotonic()
        self.last_used = self.created_at
        self.start_ms = 0.0
        self.broken = False
        self.problems: list[str] = []  # why the runner refused to vouch for itself
        self._clean_pending = False

    @property
    def id(self) -> str:
        return self.container.id if self.container is not None else ""

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Cell:
        t0 = time.monotonic()
        kwargs = container_config(
            self.runtime,
            self.image,
            self.limits,
            self.labels,
            self.layer,
            door=self.door.mount if self.door is not None else None,
            secrets=self.secrets,
        )
        try:
            if self.layer:  # the engine would create a missing volume empty: never mount that
                self.client.volumes.get(self.layer)
            self.container = self.client.containers.create(name=self.name, detach=True, **kwargs)
            raw = self.client.api.attach_socket(
                self.container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self.channel = Channel(getattr(raw, "_sock", raw), self._final_state)
            self.container.start()
            kind, payload = self.channel.next_frame(time.monotonic() + HELLO_TIMEOUT_S)
            if kind != b"H":
                raise SandboxError(f"runner sent {kind!r} instead of hello", code="protocol_error")
        except ImageNotFound as exc:
            self.destroy()
            raise SandboxError(
                f"runtime image {self.image} is missing: run `python manage.py sandbox_build`",
                code="image_missing",
            ) from exc
        except NotFound as exc:
            missing_layer = self.layer and self.container is None
            self.destroy()
            if missing_layer:
                raise SandboxError(f"dependency layer {self.layer} is missing", code="layer_missing") from exc
            raise SandboxError(
                f"could not start a {self.runtime} cell: {exc}", code="engine_unavailable"
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
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def destroy(self) -> None:
        self.retire()
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except NotFound:
                pass
            except (APIError, DockerException):
                pass  # the orphan sweeper finds it by label
        if self.door is not None:
            self.door.proxy.close_door(self.door)

    def await_clean(self, timeout: float = CLEAN_WAIT_S) -> bool:
        """Whether the runner vouched that the previous job left nothing behind; retires the cell if not.

        After each job the runner kills what is left, cleans up and compares its state
        with the state at binding, then sends a ``C`` frame before it reads the next
        request. Normally that frame is long there when the next job comes."""
        if self.broken:
            return False
        if not self._clean_pending:
            return True
        try:
            kind, payload = self.channel.next_frame(time.monotonic() + timeout)
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
        loading = spec.function is not None and self.function_key != spec.function.key
        request = protocol.job_request(spec, with_code=loading)
        job = JobRun(spec, on_output, loading=loading, reused=self.jobs_run > 0, container_id=self.id)
        self.jobs_run += 1
        channel = self.channel  # retire() lets go of it; a dead cell's stderr is read after
        try:
            channel.send(request)
            self._relay(job, channel, spec, cancel)
        except _CellDied as died:
            return self._died(job, died.state or {}, channel)
        except _Cancelled:
            return self._cancelled(job)
        except _GuardExpired:
            return self._timed_out(job)
        except SandboxError as exc:
            self.retire()
            exc.ran_ms = job.ran_ms()
            raise
        except OSError as exc:
            self.retire()
            raise SandboxError(
                f"lost the cell's stream: {exc}", code="cell_failed", ran_ms=job.ran_ms()
            ) from exc
        return self._reported(job, loading)

    def _relay(self, job: JobRun, channel: Channel, spec: RunSpec, cancel: threading.Event | None) -> None:
        """Read the runner's frames until its summary, or until the function's module failed to load."""
        while True:
            kind, payload = channel.next_frame(job.deadline, cancel)
            if kind == b"I":
                if not job.initialised(payload):
                    return
                self.function_key = spec.function.key
            elif kind == b"S":
                self._record(spec, channel, payload)
            elif job.take(kind, payload):
                return

    def _record(self, spec: RunSpec, channel: Channel, payload: bytes) -> None:
        """A durable run's record: stored by the caller's ``on_record``, whose answer goes back before
        the job's code goes on (what it raises ends the job: the cell is retired by the pool)."""
        durable = spec.durable
        if durable is None or durable.on_record is None:
            raise SandboxError(
                "runner sent a step record for a job that is not durable", code="protocol_error"
            )
        channel.send(protocol.encode_answer(durable.on_record(payload)))

    def _died(self, job: JobRun, state: dict, channel: Channel) -> RunResult:
        """The container died mid-job: the memory limit's verdict, or a SandboxError."""
        job.flush()
        self.retire()
        return job.died(state, about=f"cell {self.name} ({channel.stderr_tail()})")

    def _cancelled(self, job: JobRun) -> RunResult:
        job.flush("[lambdasite] cancelled")
        self.retire()  # whatever the job was doing dies with the container
        return job.stopped("cancelled", verdicts.error("Cancelled", "the job was cancelled while running"))

    def _timed_out(self, job: JobRun) -> RunResult:
        """No verdict from the runner by the host's deadline: the job may still run, so the cell goes."""
        job.flush()
        self.retire()
        message = f"exceeded the {job.limits.timeout_ms} ms time limit"
        return job.stopped("timed_out", verdicts.error("Timeout", message))

    def _reported(self, job: JobRun, loading: bool) -> RunResult:
        """The runner saw the job end (or its module fail to load) and cleans up before the next one."""
        self._clean_pending = True
        job.flush()
        self.last_used = time.monotonic()
        if loading and self.function_key is None:  # the module's initialisation failed
            return job.stopped("failed", job.init_error)
        result = job.verdict()
        if job.child_died_silently(result):
            self.retire()  # never trust this cell again
        return result

    def warm(
        self, spec: RunSpec, timeout_s: float = protocol.INIT_TIMEOUT_MS / 1000.0 + GUARD_S
    ) -> dict | None:
        """Load a function's module before any job needs it; -> None, or the initialisation's error.

        Its output is not kept (no job owns it). The cell is bound to the spec's tenant."""
        if not self.await_clean():
            raise CellUnusable(", ".join(self.problems))
        try:
            self.channel.send(protocol.job_request(spec, with_code=True, warm=True))
            deadline = time.monotonic() + timeout_s
            while True:
                kind, payload = self.channel.next_frame(deadline)
                if kind == b"I":
                    break
                if kind not in protocol.STREAM_NAMES and kind != b"T":
                    raise SandboxError(f"runner sent {kind!r} while initialising", code="protocol_error")
        except (_CellDied, _GuardExpired, OSError) as exc:
            self.retire()
            raise SandboxError(f"warming {self.name} failed: {exc}", code="cell_failed") from exc
        self._clean_pending = True
        self.last_used = time.monotonic()
        ok, _, init_error = verdicts.init_report(payload)
        if ok:
            self.function_key = spec.function.key
        return init_error

    def _final_state(self) -> dict:
        """The engine's account of the container once it has stopped (diagnosis only)."""
        if self.container is None:
            return {}
        try:
            self.client.api.wait(self.container.id, timeout=5)
            return self.client.api.inspect_container(self.container.id).get("State", {})
        except Exception:  # noqa: BLE001 - diagnosis only
            return {}
