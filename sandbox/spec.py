"""The sandbox's inputs and outputs: frozen dataclasses, no Django."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .egress_policy import egress_problem, env_problem, validate_env_name

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
class Egress:
    """Where a job may connect, through the worker's egress proxy (``sandbox.egress``): ``none`` (no
    door at all: the cell has no socket, no listener, no proxy variables), ``allowlist`` (only the
    ``allow`` patterns: ``"api.example.com:443"``, ``"*.example.com:443"``, ``"203.0.113.7:443"``,
    ``"[2001:db8::1]:443"``; see ``sandbox.egress_policy``) or ``public`` (any public address).
    Addresses in the deny table (``sandbox.netpolicy``) are refused whatever the mode."""

    NONE: ClassVar[Egress]

    mode: str = "none"
    allow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", tuple(self.allow))
        problem = egress_problem(self.mode, self.allow)
        if problem is not None:
            raise ValueError(problem)

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


Egress.NONE = Egress()


@dataclass(frozen=True)
class SecretValue:
    """A tenant secret bound to a job: the environment variable ``name`` (and file ``/run/secrets/<name>``)
    holding ``value``, revision ``revision`` of the tenant's secret ``secret``. The value is never in
    a repr, a label or the container's environment; the runner masks it in the job's output."""

    name: str
    value: str = field(repr=False)
    revision: int = 0
    secret: str = ""


@dataclass(frozen=True)
class Connection:
    """One connection a job asked the egress proxy for: the host and port it asked for, the address
    the proxy connected to (or "" if none), ``verdict`` "allowed" or "denied" with ``reason``, the
    bytes each way, when it started (epoch seconds) and how long it lasted."""

    host: str
    port: int
    address: str = ""
    verdict: str = "denied"
    reason: str = ""
    bytes_sent: int = 0
    bytes_received: int = 0
    started_at: float = 0.0
    duration_ms: float = 0.0


@dataclass(frozen=True)
class DoorUse:
    """What one attempt did through its door: the connections recorded (at most the proxy's
    ``MAX_RECORDS``, in order), and how many more it made that were counted but not recorded, with
    the bytes those moved each way (billed like any other)."""

    connections: tuple[Connection, ...] = ()
    unrecorded: int = 0
    unrecorded_bytes_sent: int = 0
    unrecorded_bytes_received: int = 0

    @property
    def count(self) -> int:
        return len(self.connections) + self.unrecorded

    def result_fields(self) -> dict:
        """As ``RunResult`` carries them."""
        return {
            "connections": self.connections,
            "connections_unrecorded": self.unrecorded,
            "unrecorded_bytes_sent": self.unrecorded_bytes_sent,
            "unrecorded_bytes_received": self.unrecorded_bytes_received,
        }


@dataclass(frozen=True)
class Durable:
    """A durable run's execution: the handler gets a context first, ``journal`` (the run's recorded
    steps, in order: dicts with seq, name, kind, status, result, error, attempts) is replayed, and each
    new record the job's code sends is given to ``on_record(payload bytes) -> reply dict`` (persisted
    there, before the code goes on) whose reply goes back to it. An empty payload means a record over
    the size the runner relays. ``run`` names the run (the code's ``ctx.run_id``)."""

    run: str
    journal: tuple = ()
    on_record: Callable[[bytes], dict] | None = field(default=None, repr=False, compare=False)


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
    egress: Egress = Egress.NONE  # the door: none (default), an allowlist, or public
    env: Mapping[str, str] = field(default_factory=dict)  # non-secret configuration, as environment variables
    secrets: tuple[SecretValue, ...] = ()  # env vars and /run/secrets files; masked in the output
    durable: Durable | None = None  # a durable run's execution (its journal and its record callback)

    def __post_init__(self) -> None:
        """Configuration and secret names are checked here too (the API checks them first): a name
        becomes an environment variable and a path under /run/secrets."""
        problem = env_problem(self.env) if self.env else None
        names = [secret.name for secret in self.secrets]
        problem = problem or next(filter(None, map(validate_env_name, names)), None)
        if problem is None and (len(set(names)) != len(names) or set(names) & set(self.env)):
            problem = "a name is bound twice (configuration and secrets share one namespace)"
        if problem is not None:
            raise ValueError(problem)

    @property
    def job_uid(self) -> int:
        return self.uid if self.uid is not None else job_uid_for(self.tenant)

    def secret_revisions(self) -> tuple[tuple[str, int], ...]:
        """``(secret, revision)`` of every bound secret, as an attempt records them."""
        return tuple((s.secret or s.name, s.revision) for s in self.secrets)


@dataclass(frozen=True)
class OutputLine:
    stream: str  # "stdout" | "stderr" | "system"
    seq: int
    ts: float  # unix time the line was read
    text: str


@dataclass(frozen=True)
class RunResult:
    """What happened. ``status`` is one of succeeded, failed, timed_out, killed, cancelled (and, set by
    the caller from its ``Durable`` recorder, suspended: a durable run's execution stopped at a wait)."""

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
    connections: tuple[Connection, ...] = ()  # what the job asked the egress proxy for, in order
    connections_unrecorded: int = 0  # more connections, past the proxy's records: counted, not recorded
    unrecorded_bytes_sent: int = 0  # what those moved (billed with the recorded ones' bytes)
    unrecorded_bytes_received: int = 0
    masked: int = 0  # secret values the runner replaced with *** in the output and error
    secret_revisions: tuple[tuple[str, int], ...] = ()  # (secret, revision) the attempt was given
