"""The worker's runtime: run one attempt of a job in the sandbox while keeping its lease and storing
its output as it arrives, then hand the verdict to the lifecycle layer.

Here, and not in the services, live the things that exist only inside a worker
process: its name, its short-lived cache of tenants, the lease keeper thread, the
log writer, and the mapping from a job to the sandbox's limits and uid."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import (
    DatabaseError,
    DataError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)

import sandbox
from accounts.models import Tenant
from lambdasite.caching import Cache
from lambdasite.threads import ProcessThread
from vault.exceptions import UnknownSecret, VaultUnavailable

from . import events
from .environment import NOTHING, RunEnvironment, run_environment_of
from .models import Attempt, Job, Status
from .services import lifecycle, steps

log = logging.getLogger("lambdasite.jobs")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_tenants: Cache[Tenant] = Cache(max_age_s=2.0)


def tenant_cached(tenant_id) -> Tenant:
    """A worker's view of a tenant and its quota, at most 2 s old (the egress budget's; the limits a job
    runs under come with its claim)."""
    return _tenants.get_or_load(tenant_id, lambda: Tenant.objects.select_related("quota").get(pk=tenant_id))


def sandbox_uid(tenant_id: int) -> int:
    """The uid a tenant's jobs run as: unique per tenant, so no kernel per-uid budget is shared
    (the runner of its cells is this minus one)."""
    return settings.SANDBOX_UID_BASE + 2 * (int(tenant_id) % (1 << 29)) + 1


_versions: Cache[sandbox.FunctionRef] = Cache(max_entries=512)  # versions are immutable: no age


def function_ref(job: Job) -> sandbox.FunctionRef | None:
    """The deployed version a job invokes, as the sandbox needs it (cached per version).

    Raises LookupError when the job names a function whose version no longer exists."""
    if not job.function_name:
        return None
    return _versions.get_or_load(job.function_version_id, lambda: _read_function_ref(job))


def _read_function_ref(job: Job) -> sandbox.FunctionRef:
    # by relation: jobs never import functions
    version = job.function_version if job.function_version_id else None
    if version is None or not version.content_hash:
        raise LookupError(f"function {job.function_name} version {job.version_number} does not exist")
    return sandbox.FunctionRef(
        key=f"v{version.pk}-{version.content_hash[:16]}",
        code=version.code,
        handler=version.handler,
        layer=version.layer.volume if version.layer_id else None,
    )


_policies: Cache[tuple] = Cache(max_entries=512)  # a version's egress, env and bindings: immutable too


def job_environment(job: Job) -> RunEnvironment:
    """What the job's run reaches and is given, with the current values of its bound secrets (read
    now: a rotation reaches the next run): a deployed version's (its own columns: a job made before
    jobs recorded them runs as its version says too), an inline job's as it was submitted.
    Raises ``UnknownSecret`` when a bound secret is gone."""
    if job.function_version_id:
        mode, allow, env, secrets = _policies.get_or_load(job.function_version_id, lambda: _read_policy(job))
    elif job.function_name:  # its version was deleted: function_ref says so
        return NOTHING
    else:
        mode, allow, env, secrets = job.egress_mode, job.egress_allow, job.env, job.secrets
    if mode == "none" and not env and not secrets:
        return NOTHING
    return run_environment_of(
        tenant=job.tenant, egress_mode=mode, egress_allow=allow, env=env, secrets=secrets
    )


def _read_policy(job: Job) -> tuple:
    version = job.function_version  # by relation: jobs never import functions
    return version.egress_mode, tuple(version.egress_allow), dict(version.env), dict(version.secrets)


def job_limits(job: Job) -> sandbox.Limits:
    return limits_for(job.tenant.quota, timeout_ms=job.timeout_ms, memory_mb=job.memory_mb)


def limits_for(quota, *, timeout_ms: int, memory_mb: int) -> sandbox.Limits:
    return sandbox.Limits(
        timeout_ms=timeout_ms,
        memory_mb=memory_mb,
        cpus=settings.SANDBOX_CPUS,
        pids=settings.SANDBOX_PIDS,
        tmpfs_mb=settings.SANDBOX_TMPFS_MB,
        nofile=settings.SANDBOX_NOFILE,
        fsize_mb=settings.SANDBOX_FSIZE_MB,
        max_log_bytes=quota.max_log_bytes,
        max_log_lines=quota.max_log_lines,
        max_result_bytes=quota.max_result_bytes,
    )


class Lease:
    """One running attempt's lease, renewed by its process's LeaseRenewer until ``stop``."""

    def __init__(self, job_id, attempt: int, stop_job: threading.Event) -> None:
        self.job_id, self.attempt, self.stop_job = job_id, attempt, stop_job
        self.since = time.monotonic()  # the claim set the lease: the first renewal is due after LEASE_RENEW_S
        self.reason = ""

    def stop(self) -> None:
        _renewer().forget(self)


class LeaseRenewer(threading.Thread):
    """One per worker process, for every attempt it runs (instead of a thread per job): every
    LEASE_RENEW_S it extends each lease held at least that long, all in one statement, and asks
    the sandbox to stop an attempt that was cancelled or whose lease was lost. A renewal that fails
    (the database away) is tried again at the next tick; an attempt whose lease expires meanwhile
    is run again by the reconciler, and the statement's fence (status and attempt) keeps this
    worker's late renewal from touching the job's new attempt."""

    def __init__(self) -> None:
        super().__init__(name="lease-renewer", daemon=True)
        self._lock = threading.Lock()
        self._leases: set[Lease] = set()

    def watch(self, job_id, attempt: int, stop_job: threading.Event) -> Lease:
        lease = Lease(job_id, attempt, stop_job)
        with self._lock:
            self._leases.add(lease)
        return lease

    def forget(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def stop_all(self, reason: str) -> None:
        """Ask every attempt this process runs to stop (a cold stop of the worker)."""
        with self._lock:
            leases = list(self._leases)
        for lease in leases:
            lease.reason = reason
            lease.stop_job.set()

    def run(self) -> None:
        while True:
            time.sleep(settings.LEASE_RENEW_S)
            due = time.monotonic() - settings.LEASE_RENEW_S
            with self._lock:
                leases = [lease for lease in self._leases if lease.since <= due]
            if leases:
                self._renew(leases)
                close_old_connections()  # as a request's end: back to the pool between ticks

    def _renew(self, leases: list[Lease]) -> None:
        try:
            current = lifecycle.job_renew_leases(leases=[(lease.job_id, lease.attempt) for lease in leases])
        except Exception:  # noqa: BLE001 - database trouble: tried again at the next tick
            log.exception("lease renewal failed", extra={"leases": len(leases)})
            connection.close()  # a broken connection is discarded; the next renewal opens a new one
            return
        for lease in leases:
            cancel = current.get(str(lease.job_id))
            if cancel is None or cancel:
                lease.reason = "cancelled" if cancel else "lease_lost"
                lease.stop_job.set()
                self.forget(lease)


_renewer = ProcessThread(LeaseRenewer)  # this process's one renewer


def lease_watch(job_id, attempt: int, stop_job: threading.Event) -> Lease:
    """Keep the attempt's lease renewed until the returned lease's ``stop``."""
    return _renewer().watch(job_id, attempt, stop_job)


class WorkerStopping(BaseException):
    """The worker is stopping cold: the attempt is handed back (a BaseException, as the signal's
    SystemExit was when jobs ran on the worker's main thread)."""


_handing_back = threading.Event()


def attempts_hand_back() -> None:
    """A cold stop: every attempt of this process stops now and is handed back, none starts."""
    _handing_back.set()
    _renewer().stop_all("handed_back")


def connection_release() -> None:
    """Give this thread's PostgreSQL connection back to the pool between a long attempt's statements:
    a worker runs many attempts at once, each holding a connection only while it talks to PostgreSQL
    (DB_POOL_MAX_SIZE bounds them all). Inside a transaction (a test's) it is kept."""
    if settings.DB_POOL and not connection.in_atomic_block:
        connection.close()


class LogWriter:
    """Stores output lines as they arrive: one COPY per batch the sandbox delivers.

    COPY instead of the ORM's bulk_create: building an INSERT with a parameter per
    column per row cost more than the database's work (measured in bench/logs.py).

    Fenced by attempt: line numbers continue across attempts (a job's log is one sequence), so a
    zombie attempt (its lease expired, a retry claimed the job) that kept writing would collide with
    the retry's lines, and fail the retry. Each batch first takes a share lock on the job's row if the
    job is still at this attempt; the claim's UPDATE waits for a batch holding it, so a retry's writer
    counts every line written before the claim, and once the job has moved on a late batch is dropped
    (and logged), never stored."""

    COPY_SQL = "COPY jobs_logline (job_id, attempt, seq, stream, ts, text) FROM STDIN"
    FENCE_SQL = "SELECT 1 FROM jobs_job WHERE id = %s AND attempts = %s FOR SHARE"

    def __init__(self, job: Job, attempt: Attempt) -> None:
        self.job, self.attempt = job, attempt
        self.offset = job.log_lines  # seq continues across attempts
        if attempt.number > 1:
            # a lost attempt (its worker died or was cut off) stored lines its job's log_lines never
            # counted: continue after the last stored one, or this attempt's first line would collide
            with connection.cursor() as cursor:
                cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs_logline WHERE job_id = %s", [job.id])
                self.offset = max(self.offset, cursor.fetchone()[0])
        self.count = 0
        self.superseded = False  # a newer attempt claimed the job: this one's lines are no longer stored

    def __call__(self, lines: list[sandbox.OutputLine]) -> None:
        if not lines or self.superseded:
            return
        job_id, number, offset = self.job.id, self.attempt.number, self.offset
        stamped = [(line, datetime.fromtimestamp(line.ts, tz=UTC)) for line in lines]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(self.FENCE_SQL, [job_id, number])
            if cursor.fetchone() is None:
                self.superseded = True
                log.warning(
                    "late output of a superseded attempt dropped",
                    extra={"event": "late_log_dropped", "job_id": str(job_id), "attempt": number},
                )
                return
            with cursor.cursor.copy(self.COPY_SQL) as copy:
                for line, ts in stamped:
                    copy.write_row((job_id, number, offset + line.seq, line.stream, ts, line.text))
        self.count = max(self.count, lines[-1].seq)
        connection_release()
        events.log_lines(
            job_id=job_id,
            lines=[
                {
                    "seq": offset + line.seq,
                    "attempt": number,
                    "stream": line.stream,
                    "ts": ts.isoformat(),
                    "text": line.text,
                }
                for line, ts in stamped
            ],
        )


def job_execute(*, job_id) -> Job | None:
    """Run one attempt of a job in the sandbox (called by the worker)."""
    claimed = lifecycle.job_claim(job_id=job_id, worker=worker_name())
    if claimed is None:
        log.info("job not waiting; skipped", extra={"event": "skipped", "job_id": str(job_id)})
        return None
    job, attempt = claimed
    _tenants.put(job.tenant_id, job.tenant)  # read by the claim just now: the egress budget's view
    ending = {"job_id": job.id, "attempt_number": attempt.number}
    try:
        spec = run_spec(job, attempt)
    except LookupError as exc:  # deleted with its function while the job waited: it can never run
        gone = sandbox.RunResult(status="cancelled", error={"type": "FunctionDeleted", "message": str(exc)})
        return lifecycle.job_finish(**ending, result=gone, log_lines=0)
    except UnknownSecret as exc:  # a bound secret deleted since the deploy: the job's failure, said plainly
        error = {"type": "SecretNotFound", "message": exc.message, "traceback": ""}
        return lifecycle.job_finish(
            **ending, result=sandbox.RunResult(status="failed", error=error), log_lines=0
        )
    except VaultUnavailable as exc:  # the platform cannot decrypt (its keys): retried on the system budget
        log.error("secrets unavailable: %s", exc, extra={"event": "internal_error", **_ids(job, attempt)})
        return lifecycle.job_internal_error(**ending, error=exc, log_lines=0)
    writer = LogWriter(job, attempt)
    connection_release()  # not held while the job runs: output batches and the verdict take one again
    started = time.monotonic()
    try:
        result = steps.run_result(spec.durable, _run(spec, writer, lease=(job.id, attempt.number)))
    except sandbox.SandboxError as exc:
        log.error("sandbox failure: %s", exc, extra={"event": "internal_error", **_ids(job, attempt)})
        return lifecycle.job_internal_error(**ending, error=exc, log_lines=writer.count, ran_ms=exc.ran_ms)
    except DatabaseError:
        raise  # the database is away: the lease expires and the reconciler runs the attempt again
    except Exception as exc:  # noqa: BLE001 - what the job produced broke its processing: the job's failure
        log.exception(
            "job output could not be processed", extra={"event": "processing_error", **_ids(job, attempt)}
        )
        return _processing_failed(exc, ending, log_lines=writer.count, ran_s=time.monotonic() - started)
    except BaseException:
        # cold shutdown of the worker mid-job: hand the job back rather than leave it to the lease
        ran_ms = (time.monotonic() - started) * 1000.0
        lifecycle.job_handback(**ending, log_lines=writer.count, ran_ms=ran_ms)
        raise
    return _finish_storable(ending, result, log_lines=writer.count)


def run_spec(job: Job, attempt: Attempt) -> sandbox.RunSpec:
    """What the sandbox runs for this attempt. Raises LookupError when the job's function version is gone,
    ``UnknownSecret`` when a secret it binds is."""
    reach = job_environment(job)
    return sandbox.RunSpec(
        runtime=job.runtime,
        code=job.code,
        args=job.args,
        handler=job.handler,
        limits=job_limits(job),
        tenant=str(job.tenant_id),
        uid=sandbox_uid(job.tenant_id),
        labels={"lambdasite.job": str(job.id), "lambdasite.attempt": str(attempt.number)},
        function=function_ref(job),
        egress=reach.egress,
        env=reach.env,
        secrets=reach.secrets,
        durable=steps.session_for(job, attempt.number),  # a durable run: its journal and recorder
    )


def _run(spec: sandbox.RunSpec, writer: LogWriter, *, lease: tuple) -> sandbox.RunResult:
    """The attempt in the sandbox, its lease renewed while it runs (and no longer once it ended)."""
    stop_job = threading.Event()
    keeper = lease_watch(*lease, stop_job)
    try:
        if _handing_back.is_set():
            raise WorkerStopping()
        result = sandbox.default().run(spec, writer, cancel=stop_job)
        if keeper.reason == "handed_back":
            raise WorkerStopping()  # stopped by the cold stop, not cancelled by anyone
        return result
    finally:
        keeper.stop()


def _processing_failed(exc: Exception, ending: dict, *, log_lines: int, ran_s: float) -> Job:
    """The job's output broke its processing (not the sandbox, not the database): the job failed."""
    message = f"the job's output could not be processed ({type(exc).__name__})"
    result = sandbox.RunResult(
        status="failed",
        duration_ms=ran_s * 1000.0,
        error={"type": "ProcessingError", "message": message, "traceback": ""},
    )
    return lifecycle.job_finish(**ending, result=result, log_lines=log_lines)


def _finish_storable(ending: dict, result: sandbox.RunResult, *, log_lines: int) -> Job:
    """The attempt's verdict recorded (``finish_durably``), or, when PostgreSQL refuses what it holds,
    recorded as a failure: a last line of defence (the sandbox scrubs results) that must end the
    attempt, never leave the job running until its lease expires."""
    try:
        return finish_durably(**ending, result=result, log_lines=log_lines)
    except DataError as exc:
        log.error(
            "result not storable: %s",
            exc,
            extra={"event": "result_not_storable", "job_id": str(ending["job_id"])},
        )
        error = {"type": "ResultNotStorable", "message": "the result could not be stored", "traceback": ""}
        unstorable = dataclasses.replace(result, status="failed", result=None, error=error)
        return lifecycle.job_finish(**ending, result=unstorable, log_lines=log_lines)


def finish_durably(*, job_id, attempt_number: int, result: sandbox.RunResult, log_lines: int) -> Job:
    """Record a finished attempt, retrying while PostgreSQL cannot be reached (a network blip, a host
    cut off, a failover) for up to FINISH_RETRY_S: a result that exists is not thrown away. If the
    attempt's lease ran out meanwhile, the fence in job_finish keeps the job's outcome to its current
    attempt and records this one's verdict in its history only. A try whose commit landed but whose
    answer was lost is not repeated: the attempt is no longer running (nor lost) when we look again."""
    deadline = time.monotonic() + settings.FINISH_RETRY_S
    delay = 0.5
    while True:
        try:
            return lifecycle.job_finish(
                job_id=job_id, attempt_number=attempt_number, result=result, log_lines=log_lines
            )
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "finishing the attempt failed (%s); retrying",
                str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                extra={"event": "finish_retry", "job_id": str(job_id), "attempt": attempt_number},
            )
        connection.close()  # a broken connection is discarded; the next statement opens a new one
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
        try:
            attempt = Attempt.objects.filter(job_id=job_id, number=attempt_number).only("status").first()
        except (OperationalError, InterfaceError):
            continue
        if attempt is not None and attempt.status not in (Status.RUNNING, Status.LOST):
            return Job.objects.get(pk=job_id)  # the try before committed


def _ids(job: Job, attempt: Attempt) -> dict:
    return {"job_id": str(job.id), "attempt": attempt.number}
