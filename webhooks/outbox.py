"""The event outbox: an event is a row written in the same transaction as the change that caused it
(a job reaching its outcome, a schedule pausing itself), so a committed outcome always has its event
and a rolled-back one never does. The transitions do not know the outbox: they send their app's
signal (``jobs.signals.job_outcome``, ``schedules.signals.schedule_paused``) inside the transaction,
and ``WebhooksConfig.ready`` connects the receivers below. The delivery worker fans events out to
deliveries."""

from __future__ import annotations

from jobs.models import Job, Status
from lambdasite.caching import Cache

from .models import OutboxEvent, WebhookEndpoint

JOB_EVENTS = {
    Status.SUCCEEDED: "job.succeeded",
    Status.FAILED: "job.failed",
    Status.DEAD: "job.dead",
    Status.TIMED_OUT: "job.timed_out",
    Status.KILLED: "job.killed",
    Status.CANCELLED: "job.cancelled",
}
WANTS_TTL_S = 2.0  # a new endpoint receives events of outcomes committed at most this long after it
_wanting: Cache[frozenset] = Cache(max_age_s=WANTS_TTL_S, max_entries=1)


def tenant_wants_events(tenant_id) -> bool:
    """Whether the tenant has an enabled endpoint. Every job outcome asks, so the process keeps the set
    of tenants that have one, read at most every WANTS_TTL_S whatever the number of tenants (kept per
    tenant, it missed on every job once more tenants were active than came back within 2 s: a query
    per outcome, inside the finishing transaction)."""
    return tenant_id in _wanting.get_or_load("tenants", _tenants_with_endpoints)


def _tenants_with_endpoints() -> frozenset:
    enabled = WebhookEndpoint.objects.filter(enabled=True).order_by()
    return frozenset(enabled.values_list("tenant_id", flat=True).distinct())


def forget(tenant_id) -> None:
    """This process changed the tenant's endpoints: ask again next time."""
    _wanting.clear()


def record_job_outcome(job: Job) -> None:
    """Call inside the transaction that gives the job its final status."""
    event = JOB_EVENTS.get(job.status)
    if event is None or not (job.callback_url or tenant_wants_events(job.tenant_id)):
        return
    OutboxEvent.objects.create(
        tenant_id=job.tenant_id,
        type=event,
        job_id=job.id,
        function_id=job.function_id,
        callback_url=job.callback_url,
    )


def record(*, tenant_id, type: str, data: dict) -> None:
    """An event that is not a job's outcome (``schedule.paused``); inside the causing transaction."""
    if tenant_wants_events(tenant_id):
        OutboxEvent.objects.create(tenant_id=tenant_id, type=type, data=data)


def on_job_outcome(sender, *, job: Job, **kwargs) -> None:
    """``jobs.signals.job_outcome``'s receiver (connected by ``WebhooksConfig.ready``)."""
    record_job_outcome(job)


def on_schedule_paused(sender, *, schedule, **kwargs) -> None:
    """``schedules.signals.schedule_paused``'s receiver (connected by ``WebhooksConfig.ready``)."""
    record(
        tenant_id=schedule.tenant_id,
        type="schedule.paused",
        data={
            "schedule": schedule.name,
            "reason": schedule.paused_reason,
            "function": schedule.function.name,
        },
    )
