"""A job's life on the worker's side: claim, lease renewal, finish, internal error, hand-back and
lease expiry. Every outcome is written under the job's row lock and only by its current attempt
(the fence), so a zombie's late result can never replace what the user sees."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

import sandbox
from sandbox.jsonsafe import scrub  # jsonb refuses NUL and lone surrogates: replaced, never lost

from .. import billing, metrics, signals
from ..models import Attempt, Job, Status
from ..placement import BACK_HOME_FIELDS, back_home
from ..steprecords import FATAL_TYPES
from . import connections, dispatch, notify, retry, rows, steps

log = logging.getLogger("lambdasite.jobs")


def is_current(job: Job, attempt_number: int) -> bool:
    """The attempt fence: only the job's current, running attempt may write its outcome."""
    return job.attempts == attempt_number and job.status == Status.RUNNING


def job_claim(*, job_id, worker: str) -> tuple[Job, Attempt] | None:
    """Compare-and-set a waiting job to running, open its next attempt, take the lease; None if not waiting.

    One statement (an UPDATE ... RETURNING and the attempt's INSERT in a CTE) does the compare-and-set,
    the lease, the queue wait, the attempt and the read of the row with its tenant and quota: atomic
    by itself, one round trip."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            rows.claim_sql(),
            {
                "running": Status.RUNNING,
                "now": now,
                "worker": worker,
                "id": job_id,
                "lease": now + timedelta(seconds=settings.LEASE_S),
                "queued": Status.QUEUED,
                "dispatched": Status.DISPATCHED,
            },
        )
        row = cursor.fetchone()
        if row is None:
            return None
    job = rows.job_from_claim(row)  # the attempt's id is the row's last column
    if job.attempts == 1:
        wait_s = job.queue_wait_ms / 1000.0
        transaction.on_commit(lambda: metrics.observe_queue_wait(job.pool, wait_s))
    attempt = Attempt(
        id=row[-1],
        job=job,
        number=job.attempts,
        worker=worker,
        started_at=now,
        status=Status.RUNNING,
    )
    attempt._state.adding = False  # the row exists: the claim inserted it
    notify.status_after_commit(job)
    notify.log_event("job started", job, event="started", attempt=attempt.number, worker=worker)
    return job, attempt


def job_renew_leases(*, leases: list[tuple]) -> dict[str, bool]:
    """Extend the leases of many running attempts, ``[(job_id, attempt)]``, in one statement.
    -> {job id (str): cancel requested} for the attempts still current (one absent lost its lease)."""
    if not leases:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            rows.RENEW_MANY_SQL,
            {
                "ids": [str(job_id) for job_id, _ in leases],
                "attempts": [int(attempt) for _, attempt in leases],
                "running": Status.RUNNING,
                "lease": timezone.now() + timedelta(seconds=settings.LEASE_S),
            },
        )
        return {str(job_id): bool(cancel) for job_id, cancel in cursor.fetchall()}


def _close_attempt(job: Job, number: int, ran_ms: float | None, columns: dict, *, write: bool = True) -> dict:
    """The step every end of an attempt shares (a verdict, a sandbox failure, a hand-back, an expired
    lease): what its user code ran (nothing if it never started) is billed to the job, and its row is
    closed with ``columns`` and that charge (``write=False``: the caller writes the row together with
    the job's). -> the attempt's closing columns."""
    billed = billing.billed_ms(ran_ms)
    closed = {**columns, "billed_ms": billed, "gb_seconds": billing.gb_seconds(job.memory_mb, billed)}
    job.billed_ms += billed
    job.gb_seconds += closed["gb_seconds"]
    if write:
        Attempt.objects.filter(job_id=job.id, number=number).update(**closed)
    return closed


_CHARGED = ["billed_ms", "gb_seconds"]  # the job's columns _close_attempt adds to


def _stale(
    job: Job, closed: dict, fields: list[str], egress: connections.EgressUse = connections.NONE
) -> None:
    """An attempt the job has moved on from ended (its lease expired and a retry claimed the job): its
    closed row and its charge (and the job's ``fields``) are stored, the job's outcome is left alone."""
    job.save(update_fields=[*fields, *_CHARGED])
    notify.attempt_ended_after_commit(job, gb_seconds=closed["gb_seconds"], finishes=False, egress=egress)


def _system_failures(job: Job) -> int:
    return (
        Attempt.objects.filter(job=job).filter(Q(status=Status.LOST) | Q(error__type="InternalError")).count()
    )


def retry_delay_s(step: int, *, rand=random.random) -> float:
    """The configured delay before retry ``step``: BASE x FACTOR^(step-1), capped, jittered."""
    return retry.backoff_s(
        step,
        base=settings.RETRY_BACKOFF_BASE_S,
        factor=settings.RETRY_BACKOFF_FACTOR,
        cap=settings.RETRY_BACKOFF_CAP_S,
        rand=rand,
    )


def _settle(
    job: Job, verdict: str, now: datetime, *, system_failure: bool = False, durable: bool = False
) -> None:
    """Apply the retry policy's decision for an attempt that ended with ``verdict``."""
    failures = suspended = 0
    if not job.cancel_requested and verdict != Status.SUCCEEDED:
        failures = _system_failures(job)
        if job.durable:  # a durable run's executions that stopped at a wait spent no retry
            suspended = Attempt.objects.filter(job=job, status=Status.SUSPENDED).count()
    decision = retry.next_status(
        verdict,
        cancel_requested=job.cancel_requested,
        # a refused record (a determinism error, a limit) would be refused again: no retry
        max_retries=0 if job.durable and (job.error or {}).get("type") in FATAL_TYPES else job.max_retries,
        user_attempts=job.attempts - job.retry_base - failures - suspended,
        system_failure=system_failure,
        system_failures=failures,
        system_retries=settings.SYSTEM_RETRIES,
    )
    job.status = decision.status
    if decision.finished:
        job.finished_at = now
        if not durable:  # (job_finish made its commit durable with its first statement)
            notify.commit_durably()
        signals.job_outcome.send(sender=Job, job=job)  # its receivers write in this transaction
    if not decision.finished:
        back_home(job)  # it waits again: in its home pool, and it may overflow again
    if decision.back_in_line:
        job.next_attempt_at = job.created_at  # back at its original place in the tenant's line
    if decision.backoff_step:
        job.next_attempt_at = now + timedelta(seconds=retry_delay_s(decision.backoff_step))
        job.lease_expires_at = None
        notify.log_event("job retry scheduled", job, event="retried", attempt=job.attempts)
    if job.status == Status.CANCELLED:
        notify.log_event("job cancelled", job, event="cancelled", attempt=job.attempts)
    elif job.status == Status.DEAD and not system_failure:
        notify.log_event("job dead-lettered", job, event="dead_lettered", attempt=job.attempts)


def _first_attempt_closed(job: Job, number: int, closed: dict) -> list[Attempt] | None:
    """The history of a job whose first attempt this finish closed (with ``closed``, the columns it
    wrote), as the database now holds it: the claim gave the attempt the job's started_at and worker.
    The finished body is rendered without reading it back. None for later attempts (read)."""
    if number != 1:
        return None
    return [Attempt(job=job, number=1, worker=job.worker, started_at=job.started_at, **closed)]


_OUTPUT_FIELDS = ["log_lines", "log_bytes", "dropped_log_bytes", "egress_bytes"]  # what job_finish adds


@transaction.atomic
def job_finish(*, job_id, attempt_number: int, result: sandbox.RunResult, log_lines: int) -> Job:
    """Record an attempt's verdict; only the job's current, running attempt may write the job's outcome.

    Its commit is durable whatever the verdict (set by the row lock's statement): one round trip less
    than deciding after the retry policy, for an fsync that a retried attempt could have skipped."""
    job = rows.locked_job(job_id, durable=True)
    current = is_current(job, attempt_number)
    ran_ms = result.duration_ms + (result.init_ms or 0.0)  # a function's module initialisation is billed too
    egress = connections.egress_use(result)
    # the current attempt's row is written with the job's outcome, in one statement
    closed = _close_attempt(job, attempt_number, ran_ms, _verdict_columns(result, egress), write=not current)
    connections.connections_record(
        job_id=job.id, attempt_number=attempt_number, connections=result.connections
    )
    dispatch.fill_after_commit(job.tenant_id)  # a slot is free
    job.log_lines += log_lines
    job.log_bytes += result.log_bytes
    job.dropped_log_bytes += result.dropped_bytes
    job.egress_bytes += egress.bytes
    if not current:
        _stale(job, closed, _OUTPUT_FIELDS, egress)
        log.warning(
            "stale attempt result ignored",
            extra={"event": "stale", "job_id": str(job.id), "attempt": attempt_number},
        )
        return job
    return _finish_current(job, attempt_number, result, closed, log_lines, egress)


def _verdict_columns(result: sandbox.RunResult, egress: connections.EgressUse) -> dict:
    """An attempt's closing columns from what the sandbox reported (its reach: which secret
    revisions it was given, how many values were masked, its egress)."""
    return {
        "status": Status.CANCELLED if result.status == "cancelled" else result.status,
        "finished_at": timezone.now(),
        "duration_ms": result.duration_ms,
        "start_ms": result.start_ms,
        "init_ms": result.init_ms,
        "cpu_ms": result.cpu_ms,
        "exit_code": result.exit_code,
        "error": scrub(result.error),
        "container_id": result.container_id[:64],
        "secret_revisions": [[secret, revision] for secret, revision in result.secret_revisions],
        "masked": result.masked,
        "egress_bytes": egress.bytes,
        "connections_dropped": egress.dropped,
    }


def _finish_current(
    job: Job,
    number: int,
    result: sandbox.RunResult,
    closed: dict,
    log_lines: int,
    egress: connections.EgressUse = connections.NONE,
) -> Job:
    """The current attempt's verdict becomes the job's: its outcome, or a retry (the retry policy)."""
    verdict = closed["status"]
    job.result = scrub(result.result) if verdict == Status.SUCCEEDED else None
    job.error, job.exit_code, job.duration_ms = closed["error"], result.exit_code, result.duration_ms
    job.lease_expires_at = None
    if verdict == Status.SUSPENDED and not job.cancel_requested:
        steps.run_suspend(job, closed["finished_at"])  # a durable run waits (or resumes at once)
    else:
        _settle(job, verdict, closed["finished_at"], durable=True)
    # the attempt's closing columns and what the finish changed on the job (not the code and
    # arguments again), in one statement
    rows.close_and_finish(job, number, closed)
    notify.status_after_commit(job)
    notify.attempt_ended_after_commit(
        job,
        gb_seconds=closed["gb_seconds"],
        run_s=result.duration_ms / 1000.0,
        start_s=result.start_ms / 1000.0,
        publish_body=True,
        attempts=_first_attempt_closed(job, number, closed),
        egress=egress,
    )
    notify.log_event(
        "job finished",
        job,
        event="finished",
        attempt=number,
        status=job.status,
        duration_ms=round(result.duration_ms, 2),
        log_lines=log_lines,
        log_bytes=result.log_bytes,
        dropped_bytes=result.dropped_bytes,
    )
    return job


@transaction.atomic
def job_internal_error(
    *, job_id, attempt_number: int, error: Exception, log_lines: int, ran_ms: float = 0.0
) -> Job:
    """The sandbox failed (not the user's code): retried on the system budget, then failed as internal.
    User code that ran before the failure is billed."""
    job = rows.locked_job(job_id)
    code = getattr(error, "code", "sandbox_error")
    details = {"type": "InternalError", "code": code, "message": str(error)[:2000], "traceback": ""}
    closed = _close_attempt(job, attempt_number, ran_ms, _failed_columns(Status.FAILED, details, ran_ms))
    job.log_lines += log_lines
    if not is_current(job, attempt_number):
        _stale(job, closed, ["log_lines"])
        return job
    job.error = details
    dispatch.fill_after_commit(job.tenant_id)
    _settle(job, Status.FAILED, timezone.now(), system_failure=True)
    if job.status in (Status.FAILED, Status.DEAD):
        job.error = {**details, "message": f"the sandbox failed {_system_failures(job)} times: {error}"}
    job.save()
    notify.attempt_ended_after_commit(job, gb_seconds=closed["gb_seconds"])
    notify.status_after_commit(job)
    return job


def _failed_columns(status: str, error: dict, ran_ms: float) -> dict:
    """The closing columns of an attempt its sandbox or its worker failed, after ``ran_ms`` of it."""
    return {"status": status, "finished_at": timezone.now(), "error": error, "duration_ms": ran_ms or None}


@transaction.atomic
def job_handback(*, job_id, attempt_number: int, log_lines: int = 0, ran_ms: float = 0.0) -> None:
    """A worker shutting down mid-job gives the job back: the attempt is lost (billed for what
    ran) and the job waits again."""
    job = rows.locked_job(job_id)
    if not Attempt.objects.filter(job=job, number=attempt_number, status=Status.RUNNING).exists():
        return
    error = {"type": "WorkerStopped", "message": "the worker shut down during the attempt", "traceback": ""}
    closed = _close_attempt(job, attempt_number, ran_ms, _failed_columns(Status.LOST, error, ran_ms))
    if not is_current(job, attempt_number):
        _stale(job, closed, [])
        return
    # back at its original place in the tenant's line, and at the front of Redis's
    job.status, job.lease_expires_at, job.next_attempt_at = Status.QUEUED, None, job.created_at
    back_home(job)
    job.log_lines += log_lines
    notify.status_after_commit(job)
    dispatch.fill_after_commit(job.tenant_id)
    job.save(
        update_fields=[
            "status",
            "lease_expires_at",
            "next_attempt_at",
            "log_lines",
            *_CHARGED,
            *BACK_HOME_FIELDS,
        ]
    )
    notify.attempt_ended_after_commit(job, gb_seconds=closed["gb_seconds"])


@transaction.atomic
def job_expire_lease(*, job_id, now: datetime) -> bool:
    """The worker stopped renewing (it died, or lost its host): the attempt is lost, billed up to its
    last renewal, and the job retried on the system budget. False if the lease was not expired."""
    job = rows.locked_job(job_id, skip_locked=True, status=Status.RUNNING, lease_expires_at__lt=now)
    if job is None:
        return False
    error = {
        "type": "WorkerLost",
        "message": f"worker {job.worker} stopped renewing its lease",
        "traceback": "",
    }
    attempt = Attempt.objects.filter(job=job, number=job.attempts, status=Status.RUNNING).first()
    used = 0.0
    if attempt is not None:
        lost = {"status": Status.LOST, "finished_at": now, "error": error}
        used = _close_attempt(job, attempt.number, _ran_until_last_renewal(job, attempt), lost)["gb_seconds"]
    job.lease_expires_at = None
    job.error = error
    _settle(job, Status.LOST, now, system_failure=True)
    job.save()
    notify.attempt_ended_after_commit(job, gb_seconds=used)
    notify.status_after_commit(job)
    notify.log_event("lease expired", job, event="lease_expired", attempt=job.attempts, status=job.status)
    dispatch.fill_after_commit(job.tenant_id)
    return True


def _ran_until_last_renewal(job: Job, attempt: Attempt) -> float:
    """What a lost attempt is billed: from its start to the lease's last renewal, at most its timeout."""
    last_renewal = job.lease_expires_at - timedelta(seconds=settings.LEASE_S)
    ran_ms = max(0.0, (last_renewal - attempt.started_at).total_seconds() * 1000.0)
    return min(ran_ms, float(job.timeout_ms))
