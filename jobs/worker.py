"""The RQ worker: runs jobs in-process so the sandbox's warm cells outlive each job.

RQ's default worker forks a work-horse per job, and anything the horse holds
(here: started containers) dies with it. Jobs already run in a container, so
the fork buys no isolation; a ``SimpleWorker`` keeps the cell pool in the
worker process for its whole life.

Two roles share it: job workers take the jobs queue (jobs, invocations, warm-ups) and never a
build; build workers take only the builds queue, so a deploy never occupies a job worker and a job
never waits behind a build (``worker_queues``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import close_old_connections
from rq import Queue, worker_registration
from rq.worker import SimpleWorker, WorkerStatus

import sandbox
from lambdasite.redis_client import build_queue_name, get_queue
from sandbox.egress import EgressProxy, table_resolver
from sandbox.netpolicy import NetPolicy

from . import billing, egress_budget

log = logging.getLogger("lambdasite.worker")


def worker_queues(*, builds: bool) -> list[Queue]:
    """What a worker of each role takes: a build worker the builds queue only, a job worker the jobs
    queue only (warm-ups included: they start cells, the job workers' business)."""
    return [get_queue(build_queue_name())] if builds else [get_queue()]


def sandbox_configure(*, spares: bool = True) -> sandbox.Sandbox:
    """Build the process's cell pool from settings, with spares for the default profile of each runtime
    (none for a build worker: it starts builder containers, never cells)."""
    profile = sandbox.Limits(
        memory_mb=settings.JOB_DEFAULT_MEMORY_MB,
        cpus=settings.SANDBOX_CPUS,
        pids=settings.SANDBOX_PIDS,
        tmpfs_mb=settings.SANDBOX_TMPFS_MB,
        nofile=settings.SANDBOX_NOFILE,
        fsize_mb=settings.SANDBOX_FSIZE_MB,
    )
    pool = sandbox.configure(
        reuse=settings.SANDBOX_REUSE,
        idle_ttl_s=settings.SANDBOX_IDLE_TTL_S,
        max_idle_cells=settings.SANDBOX_MAX_IDLE_CELLS,
        spare_profiles=tuple((runtime, profile) for runtime in sandbox.RUNTIMES)
        if settings.SANDBOX_SPARES and spares
        else (),
        spares_per_profile=settings.SANDBOX_SPARES,
        sweep_interval_s=settings.SANDBOX_SWEEP_INTERVAL_S,
        provision_interval_s=settings.PROVISION_INTERVAL_S,
        idle_cpu_max_ms=settings.SANDBOX_IDLE_CPU_MAX_MS,
        on_idle_cpu=billing.charge_idle_cpu,
        on_warm=billing.charge_warm,
        egress=egress_proxy() if spares else None,  # a build worker runs builders, never cells
    )
    return pool


def egress_proxy() -> EgressProxy:
    """The worker's one egress proxy (the door of every cell whose job has egress), bounded by each
    tenant's monthly egress budget; in the system tests only, resolving from EGRESS_TEST_HOSTS."""
    return EgressProxy(
        directory=settings.EGRESS_DIR,
        host_directory=settings.EGRESS_HOST_DIR,
        policy=NetPolicy(allow_cidrs=settings.EGRESS_ALLOW_CIDRS, platform=platform_endpoints()),
        resolve=table_resolver(settings.EGRESS_TEST_HOSTS) if settings.EGRESS_TEST_HOSTS else None,
        budget=egress_budget.budget,
        max_connections=settings.EGRESS_MAX_CONNECTIONS,
        max_bytes=settings.EGRESS_MAX_BYTES,
        connect_timeout_s=settings.EGRESS_CONNECT_TIMEOUT_S,
    )


def platform_endpoints() -> list[tuple[str, int]]:
    """The platform's own services, which no job may reach through its door whatever the operator
    allows: PostgreSQL, Redis, the Docker engine (over TCP), web, and EGRESS_DENY_ENDPOINTS."""
    found = []
    database = settings.DATABASES["default"]
    if database.get("HOST") and not str(database["HOST"]).startswith("/"):  # a path: a Unix socket
        found.append((str(database["HOST"]), int(database.get("PORT") or 5432)))
    for url, port in ((settings.REDIS_URL, 6379), (os.environ.get("DOCKER_HOST", ""), 2375)):
        parts = urlsplit(url)
        if parts.scheme in ("redis", "rediss", "tcp") and parts.hostname:
            found.append((parts.hostname, parts.port or port))
    web_host, web_port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT") or 8000)
    if web_host in ("0.0.0.0", "::", ""):  # web listens on every address of this host
        found += [(info[4][0], web_port) for info in _own_addresses(web_port)]
    else:
        found.append((web_host, web_port))
    for item in settings.EGRESS_DENY_ENDPOINTS:
        host, _, port = item.rpartition(":")
        found.append((host.strip("[]"), int(port)))
    return found


def _own_addresses(port: int) -> list:
    try:
        return socket.getaddrinfo(socket.gethostname(), port, type=socket.SOCK_STREAM)
    except OSError:
        return []


class SandboxWorker(SimpleWorker):
    """Pops, runs and forgets.

    PostgreSQL is the ledger (leases, attempts, outcomes) and Redis only the transport,
    so RQ's own per-job bookkeeping buys nothing here: the started/finished/failed
    registries, the execution records, result storage and its cleanup chain, and a
    heartbeat and a state write on every job cost 27 round trips for a no-op job. This
    worker keeps RQ's loop, its dequeue and its registration (django-rq's admin and the
    provisioned cells' share read it), runs the task in the process, deletes the job's
    hash, and writes its heartbeat and state at most every ``HEARTBEAT_EVERY_S``; a
    heartbeat that finds the registration gone (Redis lost its data) registers again. A
    task that raises is logged; the job's lease expires and the reconciler runs it again.
    (The fleet's count of live workers is not this registration, which keeps a killed
    worker for minutes, but ``metrics.worker_beat``'s expiring heartbeats.)"""

    HEARTBEAT_EVERY_S = 5.0
    # How long one BLPOP waits. RQ's default (worker_ttl - 15 = 405 s) outlasts redis-py's socket
    # timeout (5 s since redis-py 8): an idle worker's pop then failed every 5 s and RQ backed off
    # for up to a minute between pops, a minute a new job could wait. A short pop is one cheap round
    # trip every few seconds on an idle worker.
    DEQUEUE_TIMEOUT_S = 3

    @property
    def dequeue_timeout(self) -> int:
        return self.DEQUEUE_TIMEOUT_S

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._beat_at = 0.0
        self._written_state = None
        self._suspension_checked_at = 0.0

    def execute_job(self, job, queue) -> None:
        self._state = WorkerStatus.BUSY
        close_old_connections()
        try:
            job.func(*job.args, **job.kwargs)
        except Exception:  # noqa: BLE001 - the lease expires and the reconciler retries the attempt
            log.exception("task failed", extra={"event": "task_failed", "rq_job": job.id})
        finally:
            close_old_connections()
            self._state = WorkerStatus.IDLE
            try:
                self.connection.delete(job.key)
            except Exception:  # noqa: BLE001 - an orphan hash is harmless: RQ never runs it again
                log.warning("could not delete the RQ job %s", job.id, exc_info=True)

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        if pipeline is None and time.monotonic() - self._beat_at < self.HEARTBEAT_EVERY_S:
            return
        self._beat_at = time.monotonic()
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.exists(self.key)
                super().heartbeat(timeout, pipe)
                if self._state != self._written_state:
                    pipe.hset(self.key, "state", self._state)
                    self._written_state = self._state
                registered = pipe.execute()[0]
            if not registered:
                self._register_again()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            # RQ's loop calls this outside its own Redis error handling: an exception here would end
            # the worker. Redis away is the next pop's to wait out (with RQ's backoff); the
            # registration lapses at worst, and comes back with the next heartbeat.
            self._written_state = None
            log.warning("heartbeat not written: %s", exc)

    def _register_again(self) -> None:
        """The registration is gone (a Redis restart without persistence, FLUSHALL): the heartbeat
        just refreshed a key that no longer existed, so write the whole registration again."""
        log.warning("worker registration lost; registering again", extra={"event": "worker_reregistered"})
        with self.connection.pipeline() as pipe:
            pipe.delete(self.key)  # the partial hash the heartbeat's HSET just created
            pipe.hset(self.key, mapping={**self.serialize(), "state": self._state})
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()
        self._written_state = self._state

    def set_state(self, state: str, pipeline=None) -> None:
        """Kept in memory; written with the next heartbeat (at most HEARTBEAT_EVERY_S late)."""
        self._state = state
        if pipeline is not None:  # registration and death write it with their own pipeline
            super().set_state(state, pipeline)
            self._written_state = state

    def check_for_suspension(self, burst: bool) -> None:
        if time.monotonic() - self._suspension_checked_at < 1.0:
            return
        self._suspension_checked_at = time.monotonic()
        try:
            super().check_for_suspension(burst)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("suspension not checked: %s", exc)  # as above: never end the worker for it


def relax_commit_durability() -> None:
    """Workers and the reconciler commit asynchronously (no WAL fsync wait per transaction).

    Safe for them: a PostgreSQL crash can lose only their last ~0.6 s of transitions,
    which puts a job back into an earlier state (claimed -> dispatched, a retry's
    rescheduling undone) that the reconciler resolves by running it again: still
    at-least-once. The transition that finishes a job is the exception: it commits
    durably before anyone is told (jobs.services.notify.commit_durably), so a seen
    outcome is never replaced by another. The web process keeps synchronous commits,
    because a 202 promises the accepted job survives.
    """
    from django.db import connections

    if not settings.WORKER_ASYNC_COMMIT:
        return
    # a libpq startup option: set when each connection opens, no extra round trip per use
    # (call before the process's first query; the pool reads this when it is created)
    options = connections["default"].settings_dict.setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c synchronous_commit=off".strip()
