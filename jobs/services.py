"""Every state transition of a job happens here: submit, dispatch, claim, lease, finish, retry, cancel.

Delivery guarantee: PostgreSQL is the source of truth and RQ only carries job
ids. A job row is committed before its id reaches Redis; a worker claims it
with a compare-and-set and holds a lease it renews while the job runs; only the
job's current attempt may write an outcome (fencing by attempt number); the
reconciler re-dispatches what Redis lost and retries attempts whose lease
expired. The result is at-least-once execution with exactly one visible
outcome per job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from rq.job import Job as RQJob

import sandbox
from accounts.models import ApiKey, Quota, Tenant
from lambdasite.errors import (
    ApplicationError,
    Conflict,
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    ValidationFailed,
)
from lambdasite.redis_client import get_queue, get_redis

from . import events, metrics
from .models import FINISHED, REQUEUEABLE, RETRYABLE, WAITING, Attempt, Job, Status

log = logging.getLogger("lambdasite.jobs")


class IdempotencyConflict(ApplicationError):
    status = 422
    code = "idempotency_conflict"


@dataclass(frozen=True)
class JobSpec:
    runtime: str
    code: str
    args: list = field(default_factory=list)
    handler: str = "main"
    timeout_ms: int | None = None
    memory_mb: int | None = None
    max_retries: int | None = None


def _event(message: str, job: Job, **extra) -> None:
    log.info(message, extra={"job_id": str(job.id), "tenant": job.tenant.slug, **extra})


def _announce(job: Job) -> None:
    """Tell live pages about the job's new status once the transaction commits."""
    job_id, tenant_id, status, attempt, runtime = job.id, job.tenant_id, job.status, job.attempts, job.runtime
    transaction.on_commit(
        lambda: events.status_changed(
            job_id=job_id, tenant_id=tenant_id, status=status, attempt=attempt, runtime=runtime
        )
    )


# -- submission --------------------------------------------------------------


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def job_spec_validate(*, quota: Quota, spec: JobSpec) -> JobSpec:
    """Check a spec against the tenant's caps and fill in defaults; raises 400/413 errors naming the field."""
    code_bytes = len(spec.code.encode("utf-8", "surrogatepass"))
    if code_bytes > quota.max_code_bytes:
        raise PayloadTooLarge(
            f"code is {code_bytes} bytes, over this tenant's cap of {quota.max_code_bytes}",
            details={"field": "code", "size": code_bytes, "limit": quota.max_code_bytes},
        )
    args_bytes = _json_size(spec.args)
    if args_bytes > quota.max_args_bytes:
        raise PayloadTooLarge(
            f"args is {args_bytes} bytes, over this tenant's cap of {quota.max_args_bytes}",
            details={"field": "args", "size": args_bytes, "limit": quota.max_args_bytes},
        )
    timeout_ms = (
        spec.timeout_ms
        if spec.timeout_ms is not None
        else min(settings.JOB_DEFAULT_TIMEOUT_MS, quota.max_timeout_ms)
    )
    memory_mb = (
        spec.memory_mb
        if spec.memory_mb is not None
        else min(settings.JOB_DEFAULT_MEMORY_MB, quota.max_memory_mb)
    )
    max_retries = spec.max_retries if spec.max_retries is not None else quota.default_max_retries
    for name, value, cap in (
        ("timeout_ms", timeout_ms, quota.max_timeout_ms),
        ("memory_mb", memory_mb, quota.max_memory_mb),
        ("max_retries", max_retries, quota.max_retries_cap),
    ):
        if value > cap:
            raise ValidationFailed(
                f"{name}: {value} is over this tenant's cap of {cap}",
                details={"fields": {name: [f"must be at most {cap}"]}, "field": name, "limit": cap},
            )
    return JobSpec(
        runtime=spec.runtime,
        code=spec.code,
        args=spec.args,
        handler=spec.handler,
        timeout_ms=timeout_ms,
        memory_mb=memory_mb,
        max_retries=max_retries,
    )


def request_hash(spec: JobSpec) -> str:
    canonical = json.dumps(spec.__dict__, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _new_job(tenant: Tenant, api_key: ApiKey | None, spec: JobSpec, **extra) -> Job:
    return Job(
        tenant=tenant,
        api_key=api_key,
        runtime=spec.runtime,
        handler=spec.handler,
        code=spec.code,
        args=spec.args,
        timeout_ms=spec.timeout_ms,
        memory_mb=spec.memory_mb,
        max_retries=spec.max_retries,
        next_attempt_at=timezone.now(),
        **extra,
    )


def tenant_admit(*, tenant: Tenant, count: int = 1) -> None:
    """Admission: a suspended tenant is refused, a spent compute budget or an empty rate bucket gets 429."""
    from accounts import ratelimit

    from . import selectors

    if tenant.is_suspended:
        raise Forbidden("this tenant is suspended", code="tenant_suspended")
    quota = tenant.quota
    _, resets_at = selectors.billing_period()
    used = selectors.gb_seconds_used_fast(tenant=tenant)
    if used >= quota.monthly_gb_seconds:
        retry_after = max(1, int((resets_at - timezone.now()).total_seconds()))
        raise RateLimited(
            f"the monthly compute budget of {quota.monthly_gb_seconds:g} GB-s is spent; it resets {resets_at.isoformat()}",
            retry_after=retry_after,
            code="quota_exceeded",
            details={
                "used_gb_seconds": round(used, 6),
                "limit_gb_seconds": quota.monthly_gb_seconds,
                "resets_at": resets_at.isoformat(),
            },
        )
    allowed, wait = ratelimit.take(
        bucket=ratelimit.tenant_bucket(tenant), per_minute=quota.submissions_per_minute, count=count
    )
    if not allowed:
        raise RateLimited(
            f"over the limit of {quota.submissions_per_minute} submissions per minute",
            retry_after=wait,
            details={"limit_per_minute": quota.submissions_per_minute},
        )


def job_submit(
    *, tenant: Tenant, api_key: ApiKey | None, spec: JobSpec, idempotency_key: str | None = None
) -> tuple[Job, bool]:
    """Create a job (or, for a repeated Idempotency-Key with the same body, return the first). -> (job, created)"""
    spec = job_spec_validate(quota=tenant.quota, spec=spec)
    digest = request_hash(spec) if idempotency_key else ""
    if idempotency_key and (match := _idempotent_match(tenant, idempotency_key, digest)) is not None:
        return match, False  # a replay is answered before admission: it costs no token
    tenant_admit(tenant=tenant)
    for _ in range(3):
        try:
            with transaction.atomic():
                job = _new_job(tenant, api_key, spec, idempotency_key=idempotency_key, request_hash=digest)
                job.save(force_insert=True)
                _announce(job)  # before the dispatch below: pages see queued, then dispatched
                transaction.on_commit(lambda: tenant_fill_slots_safely(tenant_id=tenant.id))
                transaction.on_commit(lambda: metrics.count_submitted(job.runtime))
            _event("job submitted", job, event="submitted", runtime=job.runtime)
            return job, True
        except IntegrityError:
            if not idempotency_key:
                raise
            existing = _idempotent_match(tenant, idempotency_key, digest)
            if existing is not None:
                return existing, False
    raise Conflict("could not record the job; retry the request", code="idempotency_busy")


def _idempotent_match(tenant: Tenant, key: str, digest: str) -> Job | None:
    """The job an Idempotency-Key already names; an expired key is released (None: insert again)."""
    existing = Job.objects.filter(tenant=tenant, idempotency_key=key).first()
    if existing is None:
        return None  # deleted in between: try the insert again
    if existing.created_at < timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_H):
        Job.objects.filter(pk=existing.pk).update(idempotency_key=None)
        return None
    if existing.request_hash != digest:
        raise IdempotencyConflict(
            "this Idempotency-Key was used with a different request body",
            details={"job_id": str(existing.id)},
        )
    return existing


@transaction.atomic
def job_submit_batch(*, tenant: Tenant, api_key: ApiKey | None, specs: list[JobSpec]) -> list[Job]:
    """All or nothing: every spec is validated before any job is written."""
    validated = []
    for index, spec in enumerate(specs):
        try:
            validated.append(job_spec_validate(quota=tenant.quota, spec=spec))
        except ApplicationError as exc:
            exc.details = {**exc.details, "index": index}
            exc.message = f"jobs[{index}]: {exc.message}"
            raise
    tenant_admit(tenant=tenant, count=len(validated))
    jobs = Job.objects.bulk_create([_new_job(tenant, api_key, spec) for spec in validated])
    for job in jobs:
        transaction.on_commit(lambda runtime=job.runtime: metrics.count_submitted(runtime))
        _announce(job)
    transaction.on_commit(lambda: tenant_fill_slots_safely(tenant_id=tenant.id))
    log.info("batch submitted", extra={"event": "submitted", "tenant": tenant.slug, "count": len(jobs)})
    return jobs


# -- dispatch ----------------------------------------------------------------


def rq_job_id(job_id, attempt: int) -> str:
    return f"{job_id}-{attempt}"


def _enqueue(job: Job, *, at_front: bool = False) -> None:
    get_queue().enqueue(
        "jobs.tasks.run_job",
        str(job.id),
        job_id=rq_job_id(job.id, job.attempts + 1),
        job_timeout=job.timeout_ms // 1000 + 120,
        result_ttl=0,
        failure_ttl=3600,
        description=f"lambdasite job {job.id}",
        at_front=at_front,
    )


def tenant_fill_slots(*, tenant_id) -> int:
    """Dispatch the tenant's oldest waiting jobs while it has fewer than max_concurrency dispatched or running.

    Each tenant holds at most its concurrency in Redis, so one tenant's flood never
    sits in front of another tenant's job: RQ's FIFO sees the tenants interleaved.
    A suspended tenant's jobs stay waiting. Jobs that already ran (lost workers,
    retries) go to the front of the queue.
    """
    now = timezone.now()
    params = {
        "tenant": tenant_id,
        "now": now,
        "queued": Status.QUEUED,
        "dispatched": Status.DISPATCHED,
        "running": Status.RUNNING,
    }
    with connection.cursor() as cursor:
        cursor.execute(_FILL_PRECHECK_SQL, params)
        if cursor.fetchone() is None:
            return 0  # nothing waiting: no lock taken (a job queued right after this check dispatches itself)
    with transaction.atomic(), connection.cursor() as cursor:
        # NO KEY UPDATE: serializes slot filling per tenant without blocking the FOR KEY SHARE
        # that every job insert's foreign-key check takes on the tenant row (no deadlocks)
        cursor.execute(_FILL_LOCK_SQL, params)
        slug, suspended, max_concurrency = cursor.fetchone()
        if suspended:
            return 0
        # a new statement, so its snapshot (and the in-flight count) is taken after the lock
        cursor.execute(_FILL_SQL, {**params, "max": max_concurrency})
        batch = sorted(cursor.fetchall(), key=lambda row: (row[3], row[4]))
        batch = [
            Job(id=job_id, attempts=attempts, timeout_ms=timeout_ms)
            for job_id, attempts, timeout_ms, _, _ in batch
        ]
        for job in batch:
            _enqueue(job, at_front=job.attempts > 0)
    for job in batch:
        log.info(
            "job dispatched",
            extra={"event": "dispatched", "job_id": str(job.id), "tenant": slug, "attempt": job.attempts + 1},
        )
        events.status_changed(
            job_id=job.id, tenant_id=tenant_id, status=Status.DISPATCHED, attempt=job.attempts
        )
    return len(batch)


# Slot filling runs on every submit and every finished attempt: three plain statements
# instead of the ORM's five (measured: the ORM's query compilation dominated it).
_FILL_PRECHECK_SQL = "SELECT 1 FROM jobs_job WHERE tenant_id = %(tenant)s AND status = %(queued)s AND next_attempt_at <= %(now)s LIMIT 1"
_FILL_LOCK_SQL = (
    "SELECT t.slug, t.is_suspended, q.max_concurrency FROM accounts_tenant t JOIN accounts_quota q ON q.tenant_id = t.id"
    " WHERE t.id = %(tenant)s FOR NO KEY UPDATE OF t"
)
_FILL_SQL = """
UPDATE jobs_job SET status = %(dispatched)s, dispatched_at = %(now)s
WHERE id IN (
    SELECT id FROM jobs_job
    WHERE tenant_id = %(tenant)s AND status = %(queued)s AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at, created_at
    LIMIT GREATEST(0, %(max)s - (
        SELECT count(*) FROM jobs_job WHERE tenant_id = %(tenant)s AND status IN (%(dispatched)s, %(running)s)
    ))
) AND status = %(queued)s
RETURNING id, attempts, timeout_ms, next_attempt_at, created_at
"""


def tenant_fill_slots_safely(*, tenant_id) -> None:
    """After commit; a failure is logged, never raised: the jobs are committed and the reconciler retries."""
    try:
        tenant_fill_slots(tenant_id=tenant_id)
    except Exception:  # noqa: BLE001 - Redis down must not turn an accepted job into a 500
        log.warning(
            "dispatch failed; the reconciler will retry",
            exc_info=True,
            extra={"event": "dispatch_failed", "tenant": str(tenant_id)},
        )


# -- running -----------------------------------------------------------------


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_CLAIM_SQL = """
UPDATE jobs_job SET status = %(running)s, attempts = attempts + 1, started_at = %(now)s, worker = %(worker)s,
    lease_expires_at = %(lease)s,
    queue_wait_ms = COALESCE(queue_wait_ms, EXTRACT(EPOCH FROM (%(now)s - created_at)) * 1000.0)
WHERE id = %(id)s AND status IN (%(queued)s, %(dispatched)s) AND NOT cancel_requested
RETURNING *
"""


@transaction.atomic
def job_claim(*, job_id, worker: str) -> tuple[Job, Attempt] | None:
    """Compare-and-set a waiting job to running, open its next attempt and take the lease; None if not waiting.

    One UPDATE ... RETURNING does the compare-and-set, the lease, the queue wait and the read of the row."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "running": Status.RUNNING,
                "now": now,
                "worker": worker,
                "lease": now + timedelta(seconds=settings.LEASE_S),
                "id": job_id,
                "queued": Status.QUEUED,
                "dispatched": Status.DISPATCHED,
            },
        )
        row = cursor.fetchone()
        if row is None:
            return None
        columns = [col.name for col in cursor.description]
    job = _job_from_row(columns, row)
    job.tenant = tenant_cached(job.tenant_id)
    if job.attempts == 1:
        wait_s = job.queue_wait_ms / 1000.0
        transaction.on_commit(lambda: metrics.observe("job_queue_wait_seconds", wait_s))
    attempt = Attempt.objects.create(
        job=job, number=job.attempts, worker=worker, started_at=now, status=Status.RUNNING
    )
    _announce(job)
    _event("job started", job, event="started", attempt=attempt.number, worker=worker)
    return job, attempt


def _job_from_row(columns: list[str], row: tuple) -> Job:
    """A model instance from a raw RETURNING * row, converted the way the ORM converts a SELECT
    (jsonb arrives as text) and ordered as Model.from_db() expects."""
    by_column = dict(zip(columns, row))
    model_fields = Job._meta.concrete_fields
    values = []
    for model_field in model_fields:
        value = by_column[model_field.column]
        if hasattr(model_field, "from_db_value"):
            value = model_field.from_db_value(value, None, connection)
        values.append(value)
    return Job.from_db(connection.alias, [f.attname for f in model_fields], values)


_tenant_cache: dict = {}


def tenant_cached(tenant_id, max_age_s: float = 2.0) -> Tenant:
    """A worker's view of a tenant and its quota, at most ``max_age_s`` old (limits of a job being claimed)."""
    hit = _tenant_cache.get(tenant_id)
    if hit is not None and time.monotonic() - hit[0] < max_age_s:
        return hit[1]
    tenant = Tenant.objects.select_related("quota").get(pk=tenant_id)
    _tenant_cache[tenant_id] = (time.monotonic(), tenant)
    return tenant


def job_renew_lease(*, job_id, attempt: int) -> tuple[bool, bool]:
    """Extend the lease of the current attempt. -> (still ours, cancel requested)"""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET lease_expires_at = %s WHERE id = %s AND attempts = %s AND status = %s "
            "RETURNING cancel_requested",
            [timezone.now() + timedelta(seconds=settings.LEASE_S), job_id, attempt, Status.RUNNING],
        )
        row = cursor.fetchone()
    return (row is not None, bool(row and row[0]))


class LeaseKeeper(threading.Thread):
    """Renews the lease while the job runs and asks the sandbox to stop on cancel or lost lease."""

    def __init__(self, job_id, attempt: int, stop_job: threading.Event) -> None:
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.job_id, self.attempt, self.stop_job = job_id, attempt, stop_job
        self.done = threading.Event()
        self.reason = ""

    def run(self) -> None:
        try:
            while not self.done.wait(settings.LEASE_RENEW_S):
                ours, cancel = job_renew_lease(job_id=self.job_id, attempt=self.attempt)
                if not ours or cancel:
                    self.reason = "cancelled" if cancel else "lease_lost"
                    self.stop_job.set()
                    return
        except Exception:  # noqa: BLE001 - database trouble: the lease simply expires
            log.exception("lease renewal failed", extra={"job_id": str(self.job_id), "attempt": self.attempt})
        finally:
            connection.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)


def job_limits(job: Job) -> sandbox.Limits:
    quota = job.tenant.quota
    return sandbox.Limits(
        timeout_ms=job.timeout_ms,
        memory_mb=job.memory_mb,
        cpus=settings.SANDBOX_CPUS,
        pids=settings.SANDBOX_PIDS,
        tmpfs_mb=settings.SANDBOX_TMPFS_MB,
        nofile=settings.SANDBOX_NOFILE,
        fsize_mb=settings.SANDBOX_FSIZE_MB,
        max_log_bytes=quota.max_log_bytes,
        max_log_lines=quota.max_log_lines,
        max_result_bytes=quota.max_result_bytes,
    )


class LogWriter:
    """Stores output lines as they arrive: one COPY per batch the sandbox delivers.

    COPY instead of the ORM's bulk_create: building an INSERT with a parameter per
    column per row cost more than the database's work (measured in bench/logs.py)."""

    COPY_SQL = "COPY jobs_logline (job_id, attempt, seq, stream, ts, text) FROM STDIN"

    def __init__(self, job: Job, attempt: Attempt) -> None:
        self.job, self.attempt = job, attempt
        self.offset = job.log_lines  # seq continues across attempts
        self.count = 0

    def __call__(self, lines: list[sandbox.OutputLine]) -> None:
        if not lines:
            return
        job_id, number, offset = self.job.id, self.attempt.number, self.offset
        stamped = [(line, datetime.fromtimestamp(line.ts, tz=UTC)) for line in lines]
        with connection.cursor() as cursor, cursor.cursor.copy(self.COPY_SQL) as copy:
            for line, ts in stamped:
                copy.write_row((job_id, number, offset + line.seq, line.stream, ts, line.text))
        self.count = max(self.count, lines[-1].seq)
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


def sandbox_uid(tenant_id: int) -> int:
    """The uid a tenant's jobs run as: unique per tenant, so no kernel per-uid budget is shared
    (the runner of its cells is this minus one)."""
    return settings.SANDBOX_UID_BASE + 2 * (int(tenant_id) % (1 << 29)) + 1


def job_execute(*, job_id) -> Job | None:
    """Run one attempt of a job in the sandbox (called by the worker)."""
    claimed = job_claim(job_id=job_id, worker=worker_name())
    if claimed is None:
        log.info("job not waiting; skipped", extra={"event": "skipped", "job_id": str(job_id)})
        return None
    job, attempt = claimed
    spec = sandbox.RunSpec(
        runtime=job.runtime,
        code=job.code,
        args=job.args,
        handler=job.handler,
        limits=job_limits(job),
        tenant=str(job.tenant_id),
        uid=sandbox_uid(job.tenant_id),
        labels={"lambdasite.job": str(job.id), "lambdasite.attempt": str(attempt.number)},
    )
    writer = LogWriter(job, attempt)
    stop_job = threading.Event()
    keeper = LeaseKeeper(job.id, attempt.number, stop_job)
    keeper.start()
    started = time.monotonic()
    try:
        result = sandbox.default().run(spec, writer, cancel=stop_job)
    except sandbox.SandboxError as exc:
        keeper.stop()
        log.error(
            "sandbox failure: %s",
            exc,
            extra={"event": "internal_error", "job_id": str(job.id), "attempt": attempt.number},
        )
        return job_internal_error(
            job_id=job.id, attempt_number=attempt.number, error=exc, log_lines=writer.count, ran_ms=exc.ran_ms
        )
    except DatabaseError:
        keeper.stop()
        raise  # the database is away: the lease expires and the reconciler runs the attempt again
    except Exception as exc:  # noqa: BLE001 - what the job produced broke its processing: the job's failure
        keeper.stop()
        log.exception(
            "job output could not be processed",
            extra={"event": "processing_error", "job_id": str(job.id), "attempt": attempt.number},
        )
        result = sandbox.RunResult(
            status="failed",
            duration_ms=(time.monotonic() - started) * 1000.0,
            error={
                "type": "ProcessingError",
                "message": f"the job's output could not be processed ({type(exc).__name__})",
                "traceback": "",
            },
        )
        return job_finish(job_id=job.id, attempt_number=attempt.number, result=result, log_lines=writer.count)
    except BaseException:
        # cold shutdown of the worker mid-job: hand the job back rather than leave it to the lease
        keeper.stop()
        job_handback(
            job_id=job.id,
            attempt_number=attempt.number,
            log_lines=writer.count,
            ran_ms=(time.monotonic() - started) * 1000.0,
        )
        raise
    keeper.stop()
    try:
        return job_finish(job_id=job.id, attempt_number=attempt.number, result=result, log_lines=writer.count)
    except DataError as exc:
        # a last line of defence: the sandbox scrubs results, but whatever PostgreSQL still
        # refuses must end the attempt, never leave the job running until its lease expires
        log.error(
            "result not storable: %s", exc, extra={"event": "result_not_storable", "job_id": str(job.id)}
        )
        unstorable = dataclasses.replace(
            result,
            status="failed",
            result=None,
            error={"type": "ResultNotStorable", "message": "the result could not be stored", "traceback": ""},
        )
        return job_finish(
            job_id=job.id, attempt_number=attempt.number, result=unstorable, log_lines=writer.count
        )


# -- outcomes ----------------------------------------------------------------


def _clean_json(value: Any) -> Any:
    """PostgreSQL jsonb refuses NUL characters; replace them rather than lose the result."""
    text = json.dumps(value)
    if "\\u0000" not in text:
        return value
    return json.loads(text.replace("\\u0000", "\\ufffd"))


def billed_ms(duration_ms: float | None) -> int:
    """Billed duration: rounded up to the next millisecond (at least 1 ms for an attempt that ran)."""
    import math

    return max(1, math.ceil(duration_ms)) if duration_ms else 0


def gb_seconds(memory_mb: int, billed: int) -> float:
    """Memory limit in GB (1024 MB) times billed seconds."""
    return (memory_mb / 1024.0) * (billed / 1000.0)


def backoff_s(retry_number: int, *, rand=random.random) -> float:
    """Delay before retry n (1-based): exponential, capped, with jitter in [50%, 100%] of the step."""
    step = min(
        settings.RETRY_BACKOFF_CAP_S,
        settings.RETRY_BACKOFF_BASE_S * settings.RETRY_BACKOFF_FACTOR ** (retry_number - 1),
    )
    return step * (0.5 + 0.5 * rand())


def _system_failures(job: Job) -> int:
    return (
        Attempt.objects.filter(job=job).filter(Q(status=Status.LOST) | Q(error__type="InternalError")).count()
    )


def _settle(job: Job, verdict: str, now: datetime, *, system_failure: bool = False) -> None:
    """Decide what a finished attempt means for the job: done, retry later, or dead."""
    if job.cancel_requested:
        job.status, job.finished_at = Status.CANCELLED, now
        _event("job cancelled", job, event="cancelled", attempt=job.attempts)
        return
    if verdict == Status.SUCCEEDED:
        job.status, job.finished_at = Status.SUCCEEDED, now
        return
    if system_failure:
        # not the user's fault (worker lost, sandbox failed): retried on a separate budget;
        # a lost worker's job goes straight back to the queue, a failing sandbox gets a backoff
        failures = _system_failures(job)
        if failures <= settings.SYSTEM_RETRIES:
            if verdict == Status.LOST:
                job.status, job.next_attempt_at = Status.QUEUED, job.created_at
            else:
                _schedule_retry(job, now, failures)
            return
        job.status, job.finished_at = (Status.DEAD if job.max_retries else Status.FAILED), now
        return
    user_attempts = job.attempts - job.retry_base - _system_failures(job)
    if verdict in RETRYABLE and user_attempts <= job.max_retries and job.max_retries > 0:
        _schedule_retry(job, now, user_attempts)
        return
    job.status = Status.DEAD if job.max_retries > 0 else verdict
    job.finished_at = now
    if job.status == Status.DEAD:
        _event("job dead-lettered", job, event="dead_lettered", attempt=job.attempts)


def _count_if_finished(job: Job) -> None:
    if job.status in FINISHED:
        runtime, status, job_id = job.runtime, job.status, job.id
        transaction.on_commit(lambda: metrics.job_finished(runtime, status, job_id))


def _schedule_retry(job: Job, now: datetime, retry_number: int) -> None:
    job.status = Status.RETRYING
    job.next_attempt_at = now + timedelta(seconds=backoff_s(retry_number))
    job.lease_expires_at = None
    _event("job retry scheduled", job, event="retried", attempt=job.attempts)


@transaction.atomic
def job_finish(*, job_id, attempt_number: int, result: sandbox.RunResult, log_lines: int) -> Job:
    """Record an attempt's verdict; only the job's current, running attempt may write the job's outcome."""
    job = Job.objects.select_for_update(of=("self",), no_key=True).select_related("tenant").get(pk=job_id)
    now = timezone.now()
    verdict = result.status
    if verdict == "cancelled":
        verdict = Status.CANCELLED
    billed = billed_ms(result.duration_ms)
    used = gb_seconds(job.memory_mb, billed)
    # the job's row lock (above) serializes every writer of its attempts
    Attempt.objects.filter(job_id=job.id, number=attempt_number).update(
        status=verdict,
        finished_at=now,
        duration_ms=result.duration_ms,
        start_ms=result.start_ms,
        cpu_ms=result.cpu_ms,
        exit_code=result.exit_code,
        container_id=result.container_id[:64],
        error=_clean_json(result.error),
        billed_ms=billed,
        gb_seconds=used,
    )
    job.billed_ms += billed
    job.gb_seconds += used
    transaction.on_commit(lambda: tenant_fill_slots_safely(tenant_id=job.tenant_id))  # a slot is free
    job.log_lines += log_lines
    job.log_bytes += result.log_bytes
    job.dropped_log_bytes += result.dropped_bytes
    tenant_id, runtime = job.tenant_id, job.runtime
    if job.attempts != attempt_number or job.status != Status.RUNNING:
        job.save(update_fields=["log_lines", "log_bytes", "dropped_log_bytes", "billed_ms", "gb_seconds"])
        transaction.on_commit(lambda: metrics.attempt_recorded(tenant_id=tenant_id, gb_seconds=used))
        log.warning(
            "stale attempt result ignored",
            extra={"event": "stale", "job_id": str(job.id), "attempt": attempt_number},
        )
        return job
    job.result = _clean_json(result.result) if verdict == Status.SUCCEEDED else None
    job.error = _clean_json(result.error)
    job.exit_code = result.exit_code
    job.duration_ms = result.duration_ms
    job.lease_expires_at = None
    _settle(job, verdict, now)
    job.save()
    _announce(job)
    run_s, start_s = result.duration_ms / 1000.0, result.start_ms / 1000.0
    finished = (job.status, job.id) if job.status in FINISHED else (None, None)
    transaction.on_commit(
        lambda: metrics.attempt_recorded(
            tenant_id=tenant_id,
            gb_seconds=used,
            runtime=runtime,
            status=finished[0],
            job_id=finished[1],
            run_s=run_s,
            start_s=start_s,
        )
    )
    _event(
        "job finished",
        job,
        event="finished",
        attempt=attempt_number,
        status=job.status,
        duration_ms=round(result.duration_ms, 2),
        log_lines=log_lines,
        log_bytes=result.log_bytes,
        dropped_bytes=result.dropped_bytes,
    )
    return job


def _bill(job: Job, attempt_number: int, ran_ms: float, **attempt_fields) -> float:
    """Record an attempt's end and charge what its user code ran (nothing if it never started)."""
    billed = billed_ms(ran_ms)
    used = gb_seconds(job.memory_mb, billed)
    Attempt.objects.filter(job_id=job.id, number=attempt_number).update(
        billed_ms=billed, gb_seconds=used, **attempt_fields
    )
    job.billed_ms += billed
    job.gb_seconds += used
    if used:
        tenant_id = job.tenant_id
        transaction.on_commit(lambda: metrics.attempt_recorded(tenant_id=tenant_id, gb_seconds=used))
    return used


@transaction.atomic
def job_internal_error(
    *, job_id, attempt_number: int, error: Exception, log_lines: int, ran_ms: float = 0.0
) -> Job:
    """The sandbox failed (not the user's code): retried on the system budget, then failed as internal.
    User code that ran before the failure is billed."""
    job = Job.objects.select_for_update(of=("self",), no_key=True).select_related("tenant").get(pk=job_id)
    details = {
        "type": "InternalError",
        "code": getattr(error, "code", "sandbox_error"),
        "message": str(error)[:2000],
        "traceback": "",
    }
    _bill(
        job,
        attempt_number,
        ran_ms,
        status=Status.FAILED,
        finished_at=timezone.now(),
        error=details,
        duration_ms=ran_ms or None,
    )
    job.log_lines += log_lines
    if job.attempts != attempt_number or job.status != Status.RUNNING:
        job.save(update_fields=["log_lines", "billed_ms", "gb_seconds"])
        return job
    job.error = details
    transaction.on_commit(lambda: tenant_fill_slots_safely(tenant_id=job.tenant_id))
    _settle(job, Status.FAILED, timezone.now(), system_failure=True)
    if job.status in (Status.FAILED, Status.DEAD):
        job.error = {**details, "message": f"the sandbox failed {_system_failures(job)} times: {error}"}
    job.save()
    _count_if_finished(job)
    _announce(job)
    return job


@transaction.atomic
def job_handback(*, job_id, attempt_number: int, log_lines: int = 0, ran_ms: float = 0.0) -> None:
    """A worker shutting down mid-job gives the job back: the attempt is lost (billed for what
    ran) and the job waits again."""
    job = Job.objects.select_for_update(no_key=True).get(pk=job_id)
    if not Attempt.objects.filter(job=job, number=attempt_number, status=Status.RUNNING).exists():
        return
    _bill(
        job,
        attempt_number,
        ran_ms,
        status=Status.LOST,
        finished_at=timezone.now(),
        duration_ms=ran_ms or None,
        error={
            "type": "WorkerStopped",
            "message": "the worker shut down during the attempt",
            "traceback": "",
        },
    )
    fields = ["billed_ms", "gb_seconds"]
    if job.attempts == attempt_number and job.status == Status.RUNNING:
        # back at its original place in the tenant's line, and at the front of Redis's
        job.status, job.lease_expires_at, job.next_attempt_at = Status.QUEUED, None, job.created_at
        job.log_lines += log_lines
        fields += ["status", "lease_expires_at", "next_attempt_at", "log_lines"]
        _announce(job)
        transaction.on_commit(lambda: tenant_fill_slots_safely(tenant_id=job.tenant_id))
    job.save(update_fields=fields)


# -- user actions --------------------------------------------------------------


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    """A waiting job is cancelled at once; a running one is stopped by its worker (within ~1 s)."""
    job = Job.objects.select_for_update(of=("self",), no_key=True).select_related("tenant").get(pk=job.pk)
    if job.status in FINISHED:
        raise Conflict(f"job is already {job.status}", code="job_finished", details={"status": job.status})
    job.cancel_requested = True
    if job.status in WAITING:
        job.status, job.finished_at = Status.CANCELLED, timezone.now()
        _event("job cancelled", job, event="cancelled", attempt=job.attempts)
    job.save(update_fields=["cancel_requested", "status", "finished_at"])
    _count_if_finished(job)
    _announce(job)
    transaction.on_commit(lambda: tenant_fill_slots_safely(tenant_id=job.tenant_id))
    return job


@transaction.atomic
def job_requeue(*, job: Job, by_operator: bool = False) -> Job:
    """Run a dead, failed, timed-out, killed or cancelled job again: a new attempt of the same job.

    A requeue is a new run: it passes admission (suspension, monthly budget, rate limit)
    like a submission. Only an operator acting in the admin bypasses it."""
    job = Job.objects.select_for_update(of=("self",), no_key=True).select_related("tenant").get(pk=job.pk)
    if job.status not in REQUEUEABLE:
        raise Conflict(
            f"a {job.status} job cannot be retried", code="not_retryable", details={"status": job.status}
        )
    if not by_operator:
        tenant_admit(tenant=job.tenant)
    job.status, job.cancel_requested, job.retry_base = Status.QUEUED, False, job.attempts
    job.result = job.error = job.exit_code = job.finished_at = None
    job.next_attempt_at = timezone.now()
    job.save()
    _announce(job)
    transaction.on_commit(lambda: tenant_fill_slots_safely(tenant_id=job.tenant_id))
    _event("job requeued", job, event="requeued", attempt=job.attempts)
    return job


@transaction.atomic
def job_delete(*, job: Job) -> None:
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status not in FINISHED:
        raise Conflict(
            f"job is {job.status}; cancel it first or wait for it to finish", code="job_not_finished"
        )
    job_id, tenant_id = job.id, job.tenant_id
    job.delete()
    transaction.on_commit(lambda: events.job_deleted(job_id=job_id, tenant_id=tenant_id))


# -- reconciler ----------------------------------------------------------------


def reconcile(*, now: datetime | None = None) -> dict:
    """One pass: due retries queued, free slots filled, lost dispatches redone, expired leases retried.
    Safe to run anywhere, any number of times: every step is a compare-and-set."""
    now = now or timezone.now()
    counts = {"retries_due": 0, "redispatched": 0, "leases_expired": 0}
    for job_id in Job.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).values_list(
        "id", flat=True
    )[:1000]:
        if job_expire_lease(job_id=job_id, now=now):
            counts["leases_expired"] += 1
    due = list(
        Job.objects.filter(status=Status.RETRYING, next_attempt_at__lte=now).values_list(
            "id", "tenant_id", "attempts"
        )[:5000]
    )
    if due:
        counts["retries_due"] = Job.objects.filter(
            pk__in=[row[0] for row in due], status=Status.RETRYING
        ).update(status=Status.QUEUED)
        for job_id, tenant_id, attempts in due:
            events.status_changed(job_id=job_id, tenant_id=tenant_id, status=Status.QUEUED, attempt=attempts)
    tenants = set(
        Job.objects.filter(status=Status.QUEUED, next_attempt_at__lte=now)
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    for tenant_id in tenants:
        tenant_fill_slots_safely(tenant_id=tenant_id)
    stale = now - timedelta(seconds=settings.REDISPATCH_AFTER_S)
    lost = list(
        Job.objects.filter(status=Status.DISPATCHED, dispatched_at__lte=stale).only(
            "id", "attempts", "timeout_ms"
        )[:5000]
    )
    conn = get_redis()
    for job, rq_status in zip(lost, _rq_statuses(conn, [(job.id, job.attempts) for job in lost])):
        # "queued" in RQ: still waiting in a long queue. Anything else (gone after FLUSHALL or a
        # restart, or "started" by a worker that died before its claim) means Redis lost it.
        if rq_status == b"queued":
            continue
        _enqueue(job, at_front=True)
        Job.objects.filter(pk=job.id, status=Status.DISPATCHED).update(dispatched_at=now)
        counts["redispatched"] += 1
    return counts


def _rq_statuses(conn, jobs: list[tuple]) -> list[bytes | None]:
    """RQ's status of each job's current dispatch, in one round trip."""
    if not jobs:
        return []
    with conn.pipeline(transaction=False) as pipe:
        for job_id, attempts in jobs:
            pipe.hget(RQJob.key_for(rq_job_id(job_id, attempts + 1)), "status")
        return pipe.execute()


@transaction.atomic
def job_expire_lease(*, job_id, now: datetime) -> bool:
    job = (
        Job.objects.select_for_update(of=("self",), no_key=True, skip_locked=True)
        .select_related("tenant")
        .filter(pk=job_id, status=Status.RUNNING, lease_expires_at__lt=now)
        .first()
    )
    if job is None:
        return False
    attempt = Attempt.objects.filter(job=job, number=job.attempts, status=Status.RUNNING).first()
    if attempt is not None:
        # the attempt's user code ran at least until the last renewal of its lease
        last_renewal = job.lease_expires_at - timedelta(seconds=settings.LEASE_S)
        ran_ms = min(
            max(0.0, (last_renewal - attempt.started_at).total_seconds() * 1000.0), float(job.timeout_ms)
        )
        _bill(
            job,
            attempt.number,
            ran_ms,
            status=Status.LOST,
            finished_at=now,
            error={
                "type": "WorkerLost",
                "message": f"worker {job.worker} stopped renewing its lease",
                "traceback": "",
            },
        )
    job.lease_expires_at = None
    job.error = {
        "type": "WorkerLost",
        "message": f"worker {job.worker} stopped renewing its lease",
        "traceback": "",
    }
    _settle(job, Status.LOST, now, system_failure=True)
    job.save()
    _count_if_finished(job)
    _announce(job)
    _event("lease expired", job, event="lease_expired", attempt=job.attempts, status=job.status)
    if job.status == Status.QUEUED:
        # it was already running when its worker died: back at its original place, front of Redis
        job.next_attempt_at = job.created_at
        job.save(update_fields=["next_attempt_at"])
    transaction.on_commit(lambda: tenant_fill_slots_safely(tenant_id=job.tenant_id))
    return True
