"""Live events for the dashboard: job status changes and batches of log lines.

Every process that changes a job (web, workers, the reconciler) publishes here,
after the change is committed. Events go through the Channels layer (Redis
pub/sub) to two groups: ``tenant.<id>`` (every job of a tenant: the jobs list and
the overview) and ``job.<uuid>`` (one job: its detail page and log pane). The
tenant's group also carries ``function`` and ``schedule`` events (their pages'
"look again"), published by those apps' services.

Publishing never slows or fails a job: ``publish`` puts the event on an
in-process queue and returns; one daemon thread sends them in order, a batch at a
time in two pipelined round trips. Each event carries a sequence number per group (a Redis INCR), so
a page that sees a gap, or reconnects, re-fetches state from the database. If the
queue overflows, the dropped groups get a ``resync`` event later, with a fresh
sequence number, so no page stays wrong. The database stays the truth; events only
say "look again" quickly.
"""

from __future__ import annotations

from typing import Any

from lambdasite.live import current_seq, flush, group_channel, publish  # noqa: F401 - the job events' transport

MAX_LOG_EVENT_BYTES = 64 * 1024  # larger batches are split; the page can always fetch the rest


def tenant_group(tenant_id) -> str:
    return f"tenant.{tenant_id}"


def job_group(job_id) -> str:
    return f"job.{job_id}"


def status_changed(
    *,
    job_id,
    tenant_id,
    status: str,
    attempt: int | None = None,
    runtime: str | None = None,
    function: str = "",
    schedule: str = "",
) -> None:
    """A job's status changed (call after commit). Goes to the job's group and the tenant's group.
    ``function``, ``schedule``: the names of the function it invokes and the schedule that fired it,
    so those pages refresh for their own jobs only."""
    event = {"kind": "status", "job": str(job_id), "status": status}
    if attempt is not None:
        event["attempt"] = attempt
    if runtime is not None:
        event["runtime"] = runtime
    if function:
        event["function"] = function
    if schedule:
        event["schedule"] = schedule
    publish(job_group(job_id), event)
    publish(tenant_group(tenant_id), event)


def steps_changed(*, job_id, tenant_id) -> None:
    """A durable run recorded or resolved a step, or one of its children ended: its page's timeline
    looks again (call after commit)."""
    publish(job_group(job_id), {"kind": "steps", "job": str(job_id)})


def function_changed(*, tenant_id, name: str) -> None:
    """A function changed (a version deployed or built, an alias moved, deleted...): its pages
    and the functions list look again (call after commit)."""
    publish(tenant_group(tenant_id), {"kind": "function", "function": name})


def schedule_changed(*, tenant_id, name: str) -> None:
    """A schedule fired, counted a run's outcome, or was edited, paused or deleted (after commit)."""
    publish(tenant_group(tenant_id), {"kind": "schedule", "schedule": name})


def job_deleted(*, job_id, tenant_id) -> None:
    status_changed(job_id=job_id, tenant_id=tenant_id, status="deleted")


def log_lines(*, job_id, lines: list[dict]) -> None:
    """Stored log lines (dicts with seq, attempt, stream, ts, text), split into events of bounded size."""
    batch: list[dict] = []
    size = 0
    for line in lines:
        line_size = len(line["text"]) + 64
        if batch and size + line_size > MAX_LOG_EVENT_BYTES:
            publish(job_group(job_id), {"kind": "logs", "job": str(job_id), "lines": batch})
            batch, size = [], 0
        batch.append(line)
        size += line_size
    if batch:
        publish(job_group(job_id), {"kind": "logs", "job": str(job_id), "lines": batch})


def event_for_line(line: Any) -> dict:
    """The wire form of a stored LogLine."""
    return {
        "seq": line.seq,
        "attempt": line.attempt,
        "stream": line.stream,
        "ts": line.ts.isoformat(),
        "text": line.text,
    }
