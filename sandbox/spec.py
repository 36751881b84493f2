"""The sandbox's inputs and outputs: frozen dataclasses, no Django."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

RUNTIMES = ("python", "node")
UID_BASE = 200_000


def job_uid_for(tenant: str) -> int:
    """A stable job uid for callers that do not assign one (odd: the runner runs as uid - 1).

    Lambdasite assigns ``UID_BASE + 2 * tenant id + 1`` instead, unique per tenant; a hash
    can collide, so it is only for using the sandbox on its own."""
    return UID_BASE + 2 * (zlib.crc32(tenant.encode()) % (1 << 28)) + 1


@dataclass(frozen=True)
class Limits:
    """Per-job limits. Memory, CPU, pids, tmpfs and ulimits shape the container;
    timeout, CPU time, log and result caps are enforced per job by the runner."""

    timeout_ms: int = 5000
    memory_mb: int = 128
    cpus: float = 1.0
    pids: int = 64
    tmpfs_mb: int = 16
    nofile: int = 256
    fsize_mb: int = 16
    max_log_bytes: int = 1 << 20
    max_log_lines: int = 10_000
    max_result_bytes: int = 1 << 20

    def profile(self) -> tuple:
        """What a container is created with; jobs share a cell only on an equal profile."""
        return (self.memory_mb, self.cpus, self.pids, self.tmpfs_mb, self.nofile, self.fsize_mb)


@dataclass(frozen=True)
class FunctionRef:
    """A deployed function version: its cells are bound to it, its module initialised once per cell."""

    key: str  # names the version (code, handler, dependency layer): cells never serve two
    code: str
    handler: str = "main"
    layer: str | None = None  # the Docker volume holding its dependencies, mounted read-only at /opt/deps


@dataclass(frozen=True)
class RunSpec:
    runtime: str
    code: str
    args: Any = field(default_factory=list)
    handler: str = "main"
    limits: Limits = field(default_factory=Limits)
    tenant: str = ""  # the cell key: jobs of one tenant share cells, never two tenants
    labels: dict = field(default_factory=dict)
    uid: int | None = None  # the job's uid (odd, > UID_BASE): unique per tenant; None: derived from tenant
    function: FunctionRef | None = None  # a deployed function (then ``code`` and ``handler`` are unused)

    @property
    def job_uid(self) -> int:
        return self.uid if self.uid is not None else job_uid_for(self.tenant)


@dataclass(frozen=True)
class OutputLine:
    stream: str  # "stdout" | "stderr" | "system"
    seq: int
    ts: float  # unix time the line was read
    text: str


@dataclass(frozen=True)
class RunResult:
    """What happened. ``status`` is one of succeeded, failed, timed_out, killed."""

    status: str
    result: Any = None
    error: dict | None = None
    exit_code: int | None = None
    duration_ms: float = 0.0
    cpu_ms: float | None = None
    max_rss_kb: int | None = None
    log_bytes: int = 0
    dropped_bytes: int = 0
    lines: int = 0
    container_id: str = ""
    start_ms: float = 0.0  # time spent obtaining a container for this job
    reused: bool = False  # ran in a warm cell that had run an earlier job
    init_ms: float | None = None  # a function's module initialisation, when this job's cell needed it
