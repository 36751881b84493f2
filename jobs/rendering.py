"""A job as the API shows it, rendered by hand.

The API's serializers declare the shape (for the schema; ``jobs/tests/test_serializers.py`` checks
both give the same output) and call this to render it, because building a ModelSerializer's fields
on every response was a measured share of each submit's CPU. It lives below the services so that
the transition that finishes a job can render the body the ``?wait`` client receives, publish it
with the completion signal, and spare the web a read of PostgreSQL."""

from __future__ import annotations

import functools
from datetime import UTC

from django.urls import reverse

from lambdasite.jsonbody import render_json

from . import billing, selectors, waiting
from .models import Attempt, Job
from .placement import Placement

# a finished body larger than this is not published: the waiting web process reads PostgreSQL
PUBLISHED_BODY_MAX_BYTES = 16 * 1024


def dt(value):
    """A datetime exactly as DRF's DateTimeField renders it (ISO 8601 in UTC, with Z)."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _float(value):
    return None if value is None else float(value)


def attempt_body(attempt: Attempt) -> dict:
    return {
        "number": attempt.number,
        "status": attempt.status,
        "worker": attempt.worker,
        "started_at": dt(attempt.started_at),
        "finished_at": dt(attempt.finished_at),
        "duration_ms": _float(attempt.duration_ms),
        "start_ms": _float(attempt.start_ms),
        "init_ms": _float(attempt.init_ms),
        "cpu_ms": _float(attempt.cpu_ms),
        "billed_ms": attempt.billed_ms,
        "gb_seconds": _float(attempt.gb_seconds),
        "exit_code": attempt.exit_code,
        "error": attempt.error,
        "egress_bytes": attempt.egress_bytes,
        "connections_dropped": attempt.connections_dropped,
        "secret_revisions": secret_revisions_body(attempt.secret_revisions),
        "masked": attempt.masked,
    }


def secret_revisions_body(pairs) -> list[dict]:
    """An attempt's ``[[secret, revision], …]`` as ``[{"secret": …, "revision": …}, …]``."""
    return [{"secret": secret, "revision": revision} for secret, revision in pairs or ()]


def job_body(job: Job) -> dict:
    """The job as lists and 202s show it."""
    base = job_path(job.id)
    return {
        "id": str(job.id),
        "status": job.status,
        "runtime": job.runtime,
        "handler": job.handler,
        "limits": {"timeout_ms": job.timeout_ms, "memory_mb": job.memory_mb},
        "max_retries": job.max_retries,
        "result": job.result,
        "error": job.error,
        "exit_code": job.exit_code,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "next_attempt_at": dt(job.next_attempt_at),
        "created_at": dt(job.created_at),
        "started_at": dt(job.started_at),
        "finished_at": dt(job.finished_at),
        "queue_wait_ms": _float(job.queue_wait_ms),
        "duration_ms": _float(job.duration_ms),
        "billed_ms": job.billed_ms,
        "gb_seconds": _float(job.gb_seconds),
        "cost": billing.job_cost(job),
        "log_lines": job.log_lines,
        "log_bytes": job.log_bytes,
        "dropped_log_bytes": job.dropped_log_bytes,
        "function": job.function_name or None,
        "version": job.version_number,
        "alias": job.alias or None,
        "callback_url": job.callback_url or None,
        "trigger": trigger_body(job),
        "egress": job.egress,
        "env": dict(sorted(job.env.items())),  # (jsonb keeps its keys by length)
        "secrets": dict(sorted(job.secrets.items())),
        "egress_bytes": job.egress_bytes,
        "durable": job.durable,
        "parent": str(job.parent_id) if job.parent_id else None,
        "priority": job.priority,
        "concurrency_key": job.concurrency_key,
        "pool": job.pool,
        "placement": Placement.of(job).body(),
        "placed_by": job.placed_by,
        "links": {
            "self": base,
            "logs": f"{base}/logs",
            "connections": f"{base}/connections",
            "steps": f"{base}/steps",
        },
    }


def trigger_body(job: Job) -> dict | None:
    """Who or what asked for the job, by the name it had then: ``{"kind": "api_key", "name": "ci"}``
    (the key's name), ``dashboard`` (the user's email), ``schedule`` (its name); None: not recorded."""
    if not job.trigger:
        return None
    return {"kind": job.trigger, "name": job.trigger_name}


def job_detail_body(job: Job, attempts) -> dict:
    """The job with its code, arguments and attempt history (GET /jobs/{id}, a finished ?wait)."""
    body = job_body(job)
    body.update(code=job.code, args=job.args, attempt_history=[attempt_body(a) for a in attempts])
    children, count = selectors.job_children(job=job)
    body.update(children=[child_body(*child) for child in children], children_count=count)
    body["waiting_reason"] = waiting.waiting_reason(job)
    return body


def child_body(child_id, status: str, step: int | None, index: int | None) -> dict:
    """One of a durable run's children: its id, status, the step (position) that started it (null once
    a retry of the run cut that step) and its place in the step's map."""
    return {"id": str(child_id), "status": status, "step": step, "index": index}


def published_body(job: Job, attempts=None) -> bytes | None:
    """The finished job's detail body as the ``?wait`` client will get it, or None when too large.

    ``attempts``: the job's whole history when the caller holds it (a first attempt just closed),
    else it is read."""
    if attempts is None:
        attempts = Attempt.objects.filter(job_id=job.id).order_by("number")
    try:  # the bytes the API would send, so a waiting fast path sends them as they are
        data = render_json(job_detail_body(job, attempts))
    except ValueError:  # not JSON (NaN): the waiter reads PostgreSQL and the API answers what it can
        return None
    return data if len(data) <= PUBLISHED_BODY_MAX_BYTES else None


def job_path(job_id) -> str:
    """reverse("api-job-detail") for this id, without resolving the URLconf on every response."""
    return _job_path_template().format(job_id)


@functools.cache
def _job_path_template() -> str:
    marker = "00000000-0000-0000-0000-000000000000"
    return reverse("api-job-detail", args=[marker]).replace(marker, "{}")
