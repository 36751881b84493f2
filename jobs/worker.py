"""The RQ worker: runs many jobs at once in-process, so the sandbox's warm cells outlive each job.

RQ's default worker forks a work-horse per job, and anything the horse holds
(here: started containers) dies with it. Jobs already run in a container, so
the fork buys no isolation; a ``SimpleWorker`` keeps the cell pool in the
worker process for its whole life. Each job runs on a thread of its own, in a
cell of its own; the loop pops only while the host's memory budget has room
(``sandbox.capacity``), so a job waiting on I/O no longer holds a process.

Two roles share it: job workers take the jobs queue (jobs, invocations, warm-ups) and never a
build; build workers take only the builds queue, so a deploy never occupies a job worker and a job
never waits behind a build (``worker_queues``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import close_old_connections, connections
from rq import Queue, worker_registration
from rq.exceptions import StopRequested
from rq.worker import SimpleWorker, WorkerStatus

import sandbox
from lambdasite.redis_client import build_queue_name, get_queue
from sandbox.capacity import Budget
from sandbox.egress import EgressProxy, table_resolver
from sandbox.netpolicy import NetPolicy

from . import billing, egress_budget
from .pools import DEFAULT_POOL
from .pools import queue as pool_queue

log = logging.getLogger("lambdasite.worker")


def worker_queues(*, builds: bool, pools: list[str] | None = None) -> list[Queue]:
    """What a worker of each role takes: a build worker the builds queue only, a job worker the queues
    of the pools it serves (``jobs.pools``; warm-ups included: they start cells, the job workers'
    business), in the order given."""
    if builds:
        return [get_queue(build_queue_name())]
    return [pool_queue(pool) for pool in pools or [DEFAULT_POOL]]


def worker_budget() -> Budget:
    """This worker's share of the host's memory budget (see sandbox.capacity)."""
    return Budget(
        budget_mb=settings.WORKER_MEMORY_SHARE_MB,
        max_inflight=settings.WORKER_MAX_INFLIGHT,
        idle_cell_mb=settings.SANDBOX_IDLE_CELL_MB,
        warm_reserve_mb=settings.SANDBOX_WARM_RESERVE_MB,
    )


def sandbox_configure(*, spares: bool = True, budget: Budget | None = None) -> sandbox.Sandbox:
    """Build the process's cell pool from settings, with spares for the default profile of each runtime
    (none for a build worker: it starts builder containers, never cells); its idle cells and spares
    live in what ``budget`` leaves beside the running jobs."""
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
        budget=budget or worker_budget(),
        spare_profiles=tuple((runtime, profile) for runtime in sandbox.RUNTIMES)
        if settings.SANDBOX_SPARES and spares
        else (),
        spares_per_profile=settings.SANDBOX_SPARES,
        spares_max=settings.SANDBOX_SPARES_MAX,
        starts_at_once=settings.SANDBOX_STARTS_AT_ONCE,
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
    worker for minutes, but ``metrics.worker_beat``'s expiring heartbeats.)

    Many at once: each popped job runs on a thread of its own (the claim, the run in its own
    cell, the verdict: ``jobs.execution``), and the loop pops again at once while ``budget``
    has room for another (``sandbox.capacity``: the running jobs' memory limits and a count).
    A popped job whose memory does not fit within ``HOLD_S`` goes back to the front of the queue
    (another worker may have the room) and this loop waits for a job to end before it pops
    again. Stopping: SIGTERM ends the popping at once and waits for the jobs in flight (the
    supervisor's grace bounds it); a second SIGTERM (cold) hands every attempt back."""

    HEARTBEAT_EVERY_S = 5.0
    # How long one BLPOP waits. RQ's default (worker_ttl - 15 = 405 s) outlasts redis-py's socket
    # timeout (5 s since redis-py 8): an idle worker's pop then failed every 5 s and RQ backed off
    # for up to a minute between pops, a minute a new job could wait. A short pop is one cheap round
    # trip every few seconds on an idle worker.
    DEQUEUE_TIMEOUT_S = 3

    @property
    def dequeue_timeout(self) -> int:
        return self.DEQUEUE_TIMEOUT_S

    HOLD_S = 1.0  # how long a popped job waits in the worker for its memory before going back

    def __init__(
        self, *args, budget: Budget | None = None, hand_back: Callable[[], None] = lambda: None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self._beat_at = 0.0
        self._written_state = None
        self._suspension_checked_at = 0.0
        self.budget = budget or Budget(budget_mb=settings.WORKER_MEMORY_SHARE_MB, max_inflight=1)
        self._waiting = False  # in a pop or waiting for room: a stop request may end the loop right there
        self._cold = False  # a second stop signal: hand the attempts in flight back (``hand_back``)
        self.hand_back = hand_back
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()

    # -- popping while there is room ------------------------------------------

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        self._waiting = True
        try:
            # pop only while the smallest job would fit: a popped job is one no other worker can take
            while not self.budget.wait_for_room(settings.JOB_MIN_MEMORY_MB, timeout=1.0):
                self.heartbeat()
            if self._stop_requested:
                raise StopRequested()
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        finally:
            self._waiting = False

    def execute_job(self, job, queue) -> None:
        memory_mb = job_memory_mb(job)
        deadline = time.monotonic() + self.HOLD_S
        while not self.budget.admit(memory_mb, timeout=0.2):
            if self._stop_requested or time.monotonic() > deadline:
                self._give_back(job, queue)
                if not self._stop_requested:
                    self.budget.wait_released(timeout=5.0)  # pop again once some memory came back
                return
        thread = threading.Thread(
            target=self._perform, args=(job, queue, memory_mb), name=f"job-{job.id}"[:40], daemon=True
        )
        with self._threads_lock:
            self._threads.add(thread)
        self._state = WorkerStatus.BUSY
        thread.start()

    def _give_back(self, job, queue) -> None:
        """A popped job this worker has no room for: back to the front of the queue, untouched (and
        out of RQ's intermediate list, where the pop put it)."""
        try:
            with self.connection.pipeline() as pipe:
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
                pipe.lpush(queue.key, job.id)
                pipe.execute()
        except Exception:  # noqa: BLE001 - lost from Redis: the reconciler dispatches it again
            log.warning("could not give the RQ job %s back", job.id, exc_info=True)

    def _perform(self, job, queue, memory_mb: int) -> None:
        """One job on its own thread; its database connection goes back to the pool when it ends
        (Django's connections are per thread: a thread that kept one would hold it for good)."""
        try:
            close_old_connections()
            job.func(*job.args, **job.kwargs)
        except Exception:  # noqa: BLE001 - the lease expires and the reconciler retries the attempt
            log.exception("task failed", extra={"event": "task_failed", "rq_job": job.id})
        except BaseException:  # noqa: BLE001 - a cold stop (execution.WorkerStopping): handed back
            log.info("attempt handed back", extra={"event": "handed_back", "rq_job": job.id})
        finally:
            connections.close_all()
            try:
                # RQ's pop moves the id into the queue's intermediate list (RQ's own execution takes it
                # out): left there, every job's id stayed for good, and RQ's maintenance walked the
                # whole list in the worker's loop every 10 minutes, three round trips per id
                with self.connection.pipeline(transaction=False) as pipe:
                    pipe.delete(job.key)
                    pipe.lrem(queue.intermediate_queue_key, 1, job.id)
                    pipe.execute()
            except Exception:  # noqa: BLE001 - an orphan hash is harmless: RQ never runs it again
                log.warning("could not delete the RQ job %s", job.id, exc_info=True)
            with self._threads_lock:
                self._threads.discard(threading.current_thread())
                if not self._threads:
                    self._state = WorkerStatus.IDLE
            self.budget.release(memory_mb)  # last: it wakes the loop (and a stop waiting for the end)

    def in_flight(self) -> int:
        with self._threads_lock:
            return len(self._threads)

    # -- stopping -------------------------------------------------------------

    def _shutdown(self) -> None:
        """SIGTERM: pop no more. In a pop or a wait for room the loop ends right there; elsewhere it
        ends at its next turn. The jobs in flight finish in ``teardown``."""
        self._stop_requested = True
        self.set_shutdown_requested_date()
        if self._waiting:
            raise StopRequested()

    def request_force_stop(self, signum, frame) -> None:
        try:
            super().request_force_stop(signum, frame)
        except SystemExit:
            self._cold = True
            raise

    def teardown(self) -> None:
        try:
            self._finish_in_flight()
        finally:
            super().teardown()

    def _finish_in_flight(self) -> None:
        """Wait for every job in flight (a graceful stop); on a cold stop (a second signal, raised
        here as SystemExit) hand each attempt back and wait a little for the hand-backs."""
        try:
            while self.in_flight() and not self._cold:
                self.heartbeat()
                self.budget.wait_released(timeout=1.0)
            if self._cold:
                raise SystemExit()
        except BaseException:
            self.hand_back()
            deadline = time.monotonic() + 10.0
            while self.in_flight() and time.monotonic() < deadline:
                self.budget.wait_released(timeout=0.5)
            raise

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        if pipeline is not None:
            # RQ's suspension check (``is_suspended``) beats inside its own pipeline, whose replies this
            # worker never sees. After Redis lost its data that HSET recreated the hash with
            # ``last_heartbeat`` alone, every later heartbeat found the key and never registered again:
            # the worker was left out of RQ's count for good, without a word in its log. The beat
            # below (every HEARTBEAT_EVERY_S, far within the TTL) is the only one that writes.
            return
        if time.monotonic() - self._beat_at < self.HEARTBEAT_EVERY_S:
            return
        self._beat_at = time.monotonic()
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                # registered = a whole hash (its birth: a stray HSET after a flush makes a partial one)
                # and a member of the set RQ counts (its cleaner can drop a worker that re-registered
                # between its EXISTS and its SREM)
                pipe.hexists(self.key, "birth")
                pipe.sismember(self.redis_workers_keys, self.key)
                super().heartbeat(timeout, pipe)
                if self._state != self._written_state:
                    pipe.hset(self.key, "state", self._state)
                    self._written_state = self._state
                born, counted = pipe.execute()[:2]
            if not (born and counted):
                self._register_again()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            # RQ's loop calls this outside its own Redis error handling: an exception here would end
            # the worker. Redis away is the next pop's to wait out (with RQ's backoff); the
            # registration lapses at worst, and comes back with the next heartbeat.
            self._written_state = None
            log.warning("heartbeat not written: %s", exc)

    def _register_again(self) -> None:
        """The registration is gone or partial (a Redis restart without persistence, FLUSHALL): the
        heartbeat just refreshed a key that no longer existed, so write the whole registration again."""
        log.warning("worker registration lost; registering again", extra={"event": "worker_reregistered"})
        with self.connection.pipeline() as pipe:
            pipe.delete(self.key)  # the partial hash the heartbeat's HSET just created
            pipe.hset(self.key, mapping={**self.serialize(), "state": self._state})
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()
        self._written_state = self._state

    def set_state(self, state: str, pipeline=None) -> None:
        """Kept in memory; written with the next heartbeat (at most HEARTBEAT_EVERY_S late). Busy
        while any job is in flight, whatever the loop is doing."""
        if state == WorkerStatus.IDLE and getattr(self, "_threads", None):
            state = WorkerStatus.BUSY
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


def job_memory_mb(job) -> int:
    """The memory limit a popped job asks for (``run_job(job_id, memory_mb)``, set by dispatch); a
    hash made before dispatch said it, or another task, counts as the default job."""
    args = job.args
    if len(args) > 1 and isinstance(args[1], int) and args[1] > 0:
        return args[1]
    return settings.JOB_DEFAULT_MEMORY_MB


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
