"""Durable runs, the resuming side: what resolves a waiting step, and what then wakes its run.

A run waits (status ``waiting``) on one open step. Three things resolve one, each under the run's row
lock with a compare-and-set on the step (``status = waiting``), so each resolves it exactly once:

* a timer (the scheduler's pass, ``steps_wake_due``): a sleep is over, an event wait timed out, a
  failed step's next try is due, or the run's lifetime ended while it waited for children (the run
  fails);
* its children (``on_job_outcome``, inside the transaction that gives the last child its final
  status): their results, in order, or the failures among them;
* an event (``event_publish``): its data.

The run is then queued again (``waiting -> queued``, only from ``waiting``: a run whose execution is
still ending finds the outcome itself, see ``steps.run_suspend``). A durable run that ends for good
cancels its open steps and, after its commit, its unfinished children (and the reconciler catches any
that a crash left)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from lambdasite.caching import after_commit
from lambdasite.exceptions import PayloadTooLarge
from sandbox.jsonsafe import scrub

from .. import events, signals
from ..exceptions import JobFinished
from ..models import FINISHED, WAITING, Event, Job, Status, Step
from . import dispatch, notify, rows
from .eventwaits import event_lock, event_timeout_error

log = logging.getLogger("lambdasite.jobs")

State = Step.State
OPEN = (State.WAITING, State.RETRYING)


def _wake(job: Job, now: datetime) -> bool:
    """The run's wait is over: queued again if it waits (its row is locked). -> whether it was."""
    if job.status != Status.WAITING:
        return False  # still ending its execution (it finds the outcome), or finished
    job.status, job.next_attempt_at = Status.QUEUED, now
    job.save(update_fields=["status", "next_attempt_at"])
    notify.status_after_commit(job)
    dispatch.fill_after_commit(job.tenant_id)
    return True


def _steps_changed(job_id, tenant_id) -> None:
    after_commit("telling pages of a resolved step", events.steps_changed, job_id=job_id, tenant_id=tenant_id)


# -- children ------------------------------------------------------------------------------------


def on_job_outcome(sender, job: Job, **kwargs) -> None:
    """``jobs.signals.job_outcome``: in the transaction that gives ``job`` its final status (its row
    locked, the status set but maybe not yet written). A durable run that ended closes its open steps
    and has its children cancelled; a child's end may resolve its parent's step."""
    if job.durable:
        _run_ended(job)
    if job.parent_id is not None and job.parent_step is not None:
        _steps_changed(job.parent_id, job.tenant_id)  # its parent's page counts its children
        _child_ended(job)


def _run_ended(job: Job) -> None:
    now = timezone.now()
    Step.objects.filter(job_id=job.id, status__in=OPEN).update(
        status=State.CANCELLED, wake_at=None, finished_at=now
    )
    if Job.objects.filter(parent_id=job.id).exclude(status__in=FINISHED).exists():
        after_commit("cancelling a run's children", children_cancel, parent_id=job.id)


def children_cancel(*, parent_id) -> int:
    """Cancel a finished run's unfinished children (each in its own transaction: its own cascade)."""
    from .actions import job_cancel  # actions' transitions send the signal this module receives

    cancelled = 0
    for child in Job.objects.filter(parent_id=parent_id, cancel_requested=False).exclude(status__in=FINISHED):
        try:
            job_cancel(job=child)
            cancelled += 1
        except JobFinished:
            pass  # it finished meanwhile
    return cancelled


def _child_ended(child: Job) -> None:
    """The child's step is resolved once every child of it has its final status."""
    parent = rows.locked_job(child.parent_id)
    if parent is None or parent.status in FINISHED:
        return
    step = Step.objects.filter(job_id=parent.id, seq=child.parent_step, status=State.WAITING).first()
    if step is None or step.kind not in (Step.Kind.INVOKE, Step.Kind.MAP):
        return
    siblings = Job.objects.filter(parent_id=parent.id, parent_step=step.seq).exclude(pk=child.pk)
    if siblings.exclude(status__in=FINISHED).exists():
        return
    ended = [(child.child_index, child.id, child.status, child.result, child.error)]
    ended += siblings.values_list("child_index", "id", "status", "result", "error")
    _children_resolve(parent, step, ended)


def _children_resolve(parent: Job, step: Step, ended: list[tuple]) -> None:
    """Each child's result or error in its place (one deleted before its step resolved is an error)."""
    count = max((step.input or {}).get("count") or 0, *(1 + (index or 0) for index, *_ in ended))
    gone = {"type": "ChildDeleted", "message": "the child was deleted", "traceback": "", "status": "deleted"}
    results, errors = [None] * count, [dict(gone, job=None) for _ in range(count)]
    for index, job_id, status, result, error in ended:
        if status == Status.SUCCEEDED:
            results[index or 0], errors[index or 0] = result, None
        else:
            errors[index or 0] = _child_error(job_id, status, error)
    failed = [e for e in errors if e is not None]
    now = timezone.now()
    if step.kind == Step.Kind.INVOKE:
        result, error = results[0], None
        if failed:
            first = failed[0]
            error = {
                **first,
                "type": "ChildFailed",
                "message": f"child {first['job']} {first['status']}: {first['type']}: {first['message']}",
            }
    else:
        result, error = results, None
        if failed:
            error = {
                "type": "ChildFailed",
                "message": f"{len(failed)} of {count} children did not succeed",
                "traceback": "",
                "errors": errors,
            }
    size = len(json.dumps([result, error], default=str))
    if _over_recorded_bytes(parent, step, size):
        limit = parent.tenant.quota.max_recorded_bytes_per_run
        result, error = (
            None,
            {
                "type": "RecordLimitExceeded",
                "message": f"the children's results would take the run over {limit} recorded bytes",
                "traceback": "",
            },
        )
    Step.objects.filter(pk=step.pk, status=State.WAITING).update(
        status=State.FAILED if error else State.SUCCEEDED,
        result=scrub(result),
        error=scrub(error),
        size=step.size + size,
        wake_at=None,
        finished_at=now,
    )
    _wake(parent, now)
    _steps_changed(parent.id, parent.tenant_id)


def _child_error(job_id, status: str, error: dict | None) -> dict:
    error = error or {}
    return {
        "type": error.get("type") or status,
        "message": error.get("message") or f"the child ended {status}",
        "traceback": error.get("traceback") or "",
        "status": status,
        "job": str(job_id),
    }


def _over_recorded_bytes(parent: Job, step: Step, size: int) -> bool:
    from django.db.models import Sum

    used = Step.objects.filter(job_id=parent.id).aggregate(n=Sum("size"))["n"] or 0
    return used + size > parent.tenant.quota.max_recorded_bytes_per_run


# -- timers --------------------------------------------------------------------------------------


def steps_wake_due(*, now: datetime, limit: int = 1000) -> int:
    """Resolve the timers that are due (``now``: the reconciler's clock); -> runs whose timer fired."""
    due = (
        Step.objects.filter(status__in=OPEN, wake_at__lte=now)
        .order_by("wake_at")
        .values_list("job_id", flat=True)
    )
    woken = 0
    for job_id in dict.fromkeys(due[:limit]):
        woken += _timers_fire(job_id, now)
    return woken


@transaction.atomic
def _timers_fire(job_id, now: datetime) -> int:
    job = rows.locked_job(job_id, skip_locked=True)  # another pass has it: its turn
    if job is None:
        return 0
    due = list(Step.objects.filter(job_id=job_id, status__in=OPEN, wake_at__lte=now))
    if not due:
        return 0
    for step in due:
        if step.status == State.RETRYING:
            step.wake_at = None  # its next try is due: the next execution makes it
        elif step.kind == Step.Kind.SLEEP:
            step.status, step.finished_at, step.wake_at = State.SUCCEEDED, now, None
        elif step.kind == Step.Kind.EVENT:
            step.status, step.finished_at, step.wake_at = State.FAILED, now, None
            step.error = event_timeout_error(step.input or {"event": step.event, "key": step.key})
        else:  # children still running when the run's lifetime ended
            run_expire(job, now)
            return 1
        step.save(update_fields=["status", "finished_at", "wake_at", "error"])
    _wake(job, now)
    _steps_changed(job.id, job.tenant_id)
    return 1


def run_expire(job: Job, now: datetime) -> None:
    """The run's lifetime ended (its row is locked): it fails, its children are cancelled."""
    notify.commit_durably()
    job.status, job.finished_at, job.lease_expires_at = Status.FAILED, now, None
    job.error = {
        "type": "RunLifetimeExceeded",
        "message": f"the run outlived its lifetime of {job.tenant.quota.max_run_lifetime_s} s",
        "traceback": "",
    }
    job.save(update_fields=["status", "finished_at", "lease_expires_at", "error"])
    signals.job_outcome.send(sender=Job, job=job)
    notify.status_after_commit(job)
    notify.attempt_ended_after_commit(job)
    notify.log_event("durable run expired", job, event="run_expired")


# -- events --------------------------------------------------------------------------------------


@transaction.atomic
def event_publish(*, tenant: Tenant, name: str, key: str = "", data=None) -> tuple[Event, int]:
    """Store an event and resume the tenant's runs waiting for its name and key with its data (at most
    the tenant's ``max_args_bytes``: 413). -> (the event, how many runs it resumed)."""
    size = len(json.dumps(data, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > tenant.quota.max_args_bytes:
        raise PayloadTooLarge(
            f"data is {size} bytes, over this tenant's cap of {tenant.quota.max_args_bytes}",
            details={"field": "data", "size": size, "limit": tenant.quota.max_args_bytes},
        )
    now = timezone.now()
    event_lock(tenant.id, name, key)
    event = Event.objects.create(tenant=tenant, name=name, key=key, data=scrub(data), received_at=now)
    waiting = sorted(
        Step.objects.filter(
            kind=Step.Kind.EVENT, status=State.WAITING, event=name, key=key, job__tenant_id=tenant.id
        ).values_list("job_id", "seq")
    )
    resumed = 0
    for job_id, seq in waiting:  # in id order: two events never lock two runs in opposite orders
        job = rows.locked_job(job_id)
        if job is None or job.status in FINISHED:
            continue
        taken = Step.objects.filter(job_id=job_id, seq=seq, status=State.WAITING).update(
            status=State.SUCCEEDED, result=event.data, event_id=event.id, wake_at=None, finished_at=now
        )
        if taken:
            resumed += 1
            _wake(job, now)
            _steps_changed(job_id, tenant.id)
    log.info(
        "event received",
        extra={"event": "event_received", "tenant": tenant.slug, "event_name": name, "resumed": resumed},
    )
    return event, resumed


# -- the reconciler's share -----------------------------------------------------------------------


def durable_reconcile(*, now: datetime) -> dict:
    """One pass: due timers fired, children a finished run left behind cancelled, old events purged."""
    return {
        "timers_fired": steps_wake_due(now=now),
        "orphans_cancelled": _orphans_cancel(),
        "events_purged": _events_purge(now),
    }


def _orphans_cancel(limit: int = 100) -> int:
    """Children left unfinished under a finished parent (its commit landed, the cancel that follows
    it did not: a crash between the two)."""
    orphans = (
        Job.objects.filter(
            parent__isnull=False, status__in=[*WAITING, Status.RUNNING], cancel_requested=False
        )
        .filter(parent__status__in=FINISHED)
        .values_list("parent_id", flat=True)[:limit]
    )
    return sum(children_cancel(parent_id=parent_id) for parent_id in set(orphans))


def _events_purge(now: datetime, batch: int = 1000) -> int:
    old = Event.objects.filter(received_at__lt=now - timedelta(seconds=settings.EVENT_RETENTION_S))
    ids = list(old.values_list("id", flat=True)[:batch])
    return Event.objects.filter(id__in=ids).delete()[0] if ids else 0
