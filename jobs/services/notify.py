"""What a transition tells the world once it commits: a structured log line, a live event for the
dashboard, and (when an attempt ends) one Redis round trip for usage, metrics and the completion
signal that wakes ``?wait``. None of it can fail a transition."""

from __future__ import annotations

import logging

from django.db import connection, transaction

from lambdasite.caching import after_commit
from lambdasite.redis_client import get_redis

from .. import billing, completion, events, metrics, rendering
from ..models import FINISHED, Job, Trigger

log = logging.getLogger("lambdasite.jobs")


def commit_durably() -> None:
    """This transaction finishes a job: its commit waits for the WAL flush even in a worker or the
    reconciler, whose other commits are asynchronous (jobs.worker.relax_commit_durability). The
    outcome is announced after this commit, so no ``?wait`` client, webhook or live page can see an
    outcome that a PostgreSQL crash then loses (the reconciler would run the job again and a second,
    different outcome could follow). One round trip, and redundant where commits are synchronous anyway."""
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO on")


def log_event(message: str, job: Job, **extra) -> None:
    log.info(message, extra={"job_id": str(job.id), "tenant": job.tenant.slug, **extra})


def status_after_commit(job: Job) -> None:
    """Tell live pages about the job's new status once the transaction commits."""
    job_id, tenant_id, status, attempt, runtime = job.id, job.tenant_id, job.status, job.attempts, job.runtime
    function = job.function_name
    schedule = job.trigger_name if job.trigger == Trigger.SCHEDULE else ""
    transaction.on_commit(
        lambda: events.status_changed(
            job_id=job_id,
            tenant_id=tenant_id,
            status=status,
            attempt=attempt,
            runtime=runtime,
            function=function,
            schedule=schedule,
        )
    )


def attempt_ended_after_commit(
    job: Job,
    *,
    gb_seconds: float = 0.0,
    run_s: float | None = None,
    start_s: float | None = None,
    finishes: bool = True,
    publish_body: bool = False,
    attempts=None,
    egress=None,
) -> None:
    """Once the transaction commits, in one round trip: the tenant's cached compute use, the
    attempt's histograms, and, if this transition finished the job, its counter and completion
    signal (``finishes=False`` for a stale attempt, which finishes nothing). With ``publish_body``,
    the signal carries the finished job as the API shows it, rendered after the commit (outside the
    row lock), so a ``?wait`` answers without reading PostgreSQL. ``egress``: the attempt's
    ``connections.EgressUse``, for the egress counters."""
    finished = job.status if finishes and job.status in FINISHED else None
    egress = egress or None
    if not (gb_seconds or run_s is not None or finished or egress):
        return
    # a failure loses nothing that is not repaired: a ?wait falls back to the database, the usage
    # counter is re-seeded from it, and the metrics miss one attempt
    after_commit(
        "the attempt's Redis updates",
        _tell_redis,
        level=logging.DEBUG,
        tenant_id=job.tenant_id,
        runtime=job.runtime,
        job_id=job.id,
        finished=finished,
        gb_seconds=gb_seconds,
        run_s=run_s,
        start_s=start_s,
        egress=egress,
        render=(lambda: _body(job, attempts)) if finished and publish_body else None,
    )


def _body(job: Job, attempts=None) -> bytes | None:
    try:
        return rendering.published_body(job, attempts)
    except Exception:  # noqa: BLE001 - any rendering failure: the waiter reads PostgreSQL instead
        log.warning("finished job body not rendered", exc_info=True, extra={"job_id": str(job.id)})
        return None


def _tell_redis(
    *, tenant_id, runtime, job_id, finished, gb_seconds, run_s, start_s, egress=None, render=None
) -> None:
    """One round trip: the tenant's cached use, the attempt's histograms and egress counters, the
    finished counter and the completion signal (with the body ``render`` gives, rendered now: after
    the commit)."""
    body = render() if render is not None else None
    with get_redis().pipeline(transaction=False) as pipe:
        billing.add_usage(pipe, tenant_id=tenant_id, gb_seconds=gb_seconds)
        if run_s is not None:
            metrics.observe_attempt(pipe, run_s=run_s, start_s=start_s or 0.0)
        if egress:
            metrics.count_egress(
                pipe,
                verdicts=egress.verdicts,
                bytes_sent=egress.bytes_sent,
                bytes_received=egress.bytes_received,
            )
        if finished:
            metrics.count_finished(pipe, runtime=runtime, status=finished)
            completion.announce(pipe, job_id, body)
        pipe.execute()
