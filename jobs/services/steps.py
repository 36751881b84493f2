"""Durable runs, an execution's edges: what it is given, and what its end means for the run.

A durable run is a job whose handler gets a context (``ctx``). Each execution is given its run's
journal and a recorder (``session_for``; the recording is in ``jobs.services.recording``); when it
ends, its verdict is the run's (``run_result``: a refused record fails the run, a recorded wait
suspends the execution), a suspended execution leaves the run waiting or queued again
(``run_suspend``; ``jobs.services.waits`` resumes it), and a retry cuts the journal where the run
first went wrong (``run_rewind``)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from django.db.models import Min, Q

import sandbox

from ..models import Job, Status, Step
from ..placement import back_home
from .recording import Session

State = Step.State


def session_for(job: Job, attempt_number: int) -> sandbox.Durable | None:
    """What the sandbox needs for one execution of a durable run (None: the job is not durable)."""
    if not job.durable:
        return None
    session = Session(job, attempt_number)
    return sandbox.Durable(run=str(job.id), journal=session.journal, on_record=session)


def run_result(durable: sandbox.Durable | None, result: sandbox.RunResult) -> sandbox.RunResult:
    """An execution's verdict as the job records it: a run whose record was refused failed with that
    error (whatever its code did next); one that recorded a wait was suspended (even if it was killed
    after: nothing after the wait may run anyway), unless it was cancelled."""
    if durable is None or not isinstance(durable.on_record, Session):
        return result
    session = durable.on_record
    if session.fatal is not None:
        return dataclasses.replace(result, status="failed", result=None, error=session.fatal)
    if session.suspended and result.status != "cancelled":
        return dataclasses.replace(result, status="suspended", result=None, error=None)
    return result


def run_suspend(job: Job, now: datetime) -> None:
    """An execution of the run stopped at a wait (its row is locked): the run waits, holding nothing,
    until the wait's outcome (then it is queued), or is queued at once if it has come already.
    ``next_attempt_at``: when its timer fires (a sleep's end, an event's timeout, a retry), at the
    latest; none while it waits for children (their run's lifetime is not a time it resumes at)."""
    open_steps = Step.objects.filter(job_id=job.id).filter(
        Q(status=State.WAITING) | Q(status=State.RETRYING, wake_at__isnull=False)
    )
    timed = Q(kind__in=[Step.Kind.STEP, Step.Kind.SLEEP, Step.Kind.EVENT])
    found = open_steps.aggregate(n=Min("seq"), wake=Min("wake_at", filter=timed))
    if found["n"] is None:
        job.status, job.next_attempt_at = Status.QUEUED, now
    else:
        job.status, job.next_attempt_at = Status.WAITING, found["wake"]
    back_home(job)  # its next execution starts from its home pool


def run_rewind(job: Job) -> int:
    """A finished run run again (``POST …/retry``): its journal is cut at its first step that did not
    succeed (failed, cancelled, still open), so the next execution makes that step and everything
    after it again; the children of the steps cut keep their parent but no longer their step.
    -> steps removed."""
    first = Step.objects.filter(job_id=job.id).exclude(status=State.SUCCEEDED).aggregate(n=Min("seq"))["n"]
    if first is None:
        return 0
    Job.objects.filter(parent_id=job.id, parent_step__gte=first).update(parent_step=None)
    return Step.objects.filter(job_id=job.id, seq__gte=first).delete()[0]
