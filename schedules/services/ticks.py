"""Firing schedules: run by the scheduler process on every reconcile pass (with an injectable clock).

Exactly one run per tick, whatever races: a schedule's due ticks are taken under its row lock (a
second scheduler skips a locked schedule), each run is inserted with a unique key on schedule +
tick, and the run, its job and the schedule's next tick commit together. A crash in the middle
rolls all of it back, and the next pass fires the same tick again; a tick that committed is never
fired twice.

Ticks older than SCHEDULE_MISSED_AFTER_S when the pass sees them were missed (the service was
down): ``catch_up: none`` skips them, ``latest`` runs once for them. ``overlap: skip`` skips a
tick while the previous run's job still waits or runs. A run whose job fails (or that is refused:
a quota, a disabled function, an alias deleted since the schedule was saved, each said with its
reason) counts towards ``max_failures`` consecutive failures, which pause the schedule with the
reason and a ``schedule.paused`` event."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from cronsim import CronSim
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from functions.exceptions import AliasNotFound, VersionNotFound
from functions.services.invoke import invocation_spec
from jobs.models import FINISHED, Status
from jobs.services.submit import JobSpec, Origin, job_submit
from lambdasite.exceptions import ApplicationError

from ..exceptions import ScheduleQualifierGone
from ..models import Schedule, ScheduleRun
from ..signals import schedule_paused
from . import crontab
from .notify import schedule_changed_after_commit

log = logging.getLogger("lambdasite.schedules")


def schedules_tick(*, now: datetime | None = None) -> dict:
    """One pass: fire every due schedule, then count the outcomes of finished runs."""
    now = now or timezone.now()
    counts = {"ticks_fired": 0, "ticks_skipped": 0, "ticks_missed": 0, "schedules_paused": 0}
    due = Schedule.objects.filter(enabled=True, next_fire_at__lte=now).order_by("next_fire_at")
    for schedule_id in list(due.values_list("id", flat=True)[:500]):
        for key, value in _process(schedule_id, now).items():
            counts[key] += value
    counts["schedules_paused"] += count_outcomes()
    return counts


def _last_tick_at_or_before(schedule: Schedule, moment: datetime) -> datetime:
    local = moment.astimezone(crontab.zone(schedule.timezone)) + timedelta(seconds=1)
    return next(iter(CronSim(schedule.cron, local.replace(microsecond=0), reverse=True)))


def _process(schedule_id, now: datetime) -> dict:
    counts = {"ticks_fired": 0, "ticks_skipped": 0, "ticks_missed": 0}
    with transaction.atomic():
        schedule = (
            Schedule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant__quota", "function")
            .filter(pk=schedule_id, enabled=True, next_fire_at__lte=now)
            .first()
        )
        if schedule is None:
            return counts  # another scheduler has it, or it was fired or paused in between
        missed_cut = now - timedelta(seconds=settings.SCHEDULE_MISSED_AFTER_S)
        recent = []
        if schedule.next_fire_at >= missed_cut:
            recent.append(schedule.next_fire_at)
        for tick in crontab.ticks(schedule.cron, schedule.timezone, max(schedule.next_fire_at, missed_cut)):
            if tick > now:
                break
            if tick not in recent:
                recent.append(tick)
        missed = schedule.next_fire_at < missed_cut
        fire = recent
        if missed and not recent and schedule.catch_up == Schedule.CatchUp.LATEST:
            fire = [_last_tick_at_or_before(schedule, missed_cut)]
        if missed and fire is recent:
            counts["ticks_missed"] += 1
            schedule.missed_ticks += 1
            log.warning(
                "schedule ticks missed",
                extra={
                    "event": "ticks_missed",
                    "schedule": schedule.name,
                    "since": str(schedule.next_fire_at),
                },
            )
        for tick in fire:
            status = fire_tick(schedule, tick)
            if status == ScheduleRun.Status.FIRED:
                counts["ticks_fired"] += 1
            elif status is not None:
                counts["ticks_skipped"] += 1
        following = next(crontab.ticks(schedule.cron, schedule.timezone, now), None)
        schedule.next_fire_at = following
        if following is None:
            schedule.enabled, schedule.paused_reason = False, "the expression never fires again"
        schedule.save()
        schedule_changed_after_commit(schedule)  # its next tick, last run and history changed
    return counts


def _previous_unfinished(schedule: Schedule, run: ScheduleRun) -> bool:
    earlier = schedule.runs.filter(status=ScheduleRun.Status.FIRED).exclude(pk=run.pk)
    last = earlier.select_related("job").order_by("-tick_at").first()
    return last is not None and last.job is not None and last.job.status not in FINISHED


def invocation_of(schedule: Schedule) -> JobSpec:
    """The job a run of ``schedule`` submits, refused as an invocation would be. Its qualifier was
    checked when the schedule was saved, so one that names nothing now is an alias deleted since:
    the schedule's own state, said as such (409 with the fix) rather than as a missing thing (404),
    which a caller of ``POST /schedules/{name}/run`` would read as the schedule being gone."""
    try:
        return invocation_spec(
            tenant=schedule.tenant,
            name=schedule.function.name,
            qualifier=schedule.qualifier or None,
            args=schedule.args,
        )
    except (AliasNotFound, VersionNotFound) as exc:
        qualifier = schedule.qualifier or "latest"
        raise ScheduleQualifierGone(
            f"schedule {schedule.name} runs {schedule.function.name} as {qualifier!r}, which names "
            f"nothing now ({exc.message}): change the schedule's qualifier, or set the alias again",
            details={"function": schedule.function.name, "qualifier": qualifier, "cause": exc.code},
        ) from None


def fire_tick(schedule: Schedule, tick: datetime) -> str | None:
    """Record the run of ``tick`` and submit its job (the caller holds the schedule's lock, in a
    transaction). -> the run's status, or None if this tick already has a run."""
    try:
        with transaction.atomic():
            run = ScheduleRun.objects.create(schedule=schedule, tick_at=tick, status="fired")
    except IntegrityError:
        return None  # fired already (a concurrent pass, or before a crash): never twice
    if schedule.overlap == Schedule.Overlap.SKIP and _previous_unfinished(schedule, run):
        run.status = ScheduleRun.Status.SKIPPED_OVERLAP
        run.save(update_fields=["status"])
        return run.status
    try:
        run.job, _ = job_submit(
            tenant=schedule.tenant,
            api_key=None,
            spec=invocation_of(schedule),
            origin=Origin.of_schedule(schedule),
        )
    except ApplicationError as exc:
        run.status, run.error, run.outcome = ScheduleRun.Status.REFUSED, exc.message[:1000], "refused"
        _failed(schedule, f"the run of {tick:%Y-%m-%d %H:%M:%S} UTC was refused: {exc.message}")
    run.save(update_fields=["status", "job", "error", "outcome"])
    schedule.last_fire_at = tick
    return run.status


def _failed(schedule: Schedule, reason: str) -> None:
    schedule.consecutive_failures += 1
    if schedule.max_failures and schedule.consecutive_failures >= schedule.max_failures and schedule.enabled:
        pause(
            schedule,
            f"paused after {schedule.consecutive_failures} consecutive failed runs; the last: {reason}",
        )


def pause(schedule: Schedule, reason: str) -> None:
    """Stop firing, say why, and send ``schedule_paused`` (inside the caller's transaction: the
    webhook outbox writes its ``schedule.paused`` event there)."""
    schedule.enabled, schedule.next_fire_at, schedule.paused_reason = False, None, reason[:500]
    schedule_paused.send(sender=Schedule, schedule=schedule)  # its receivers write in this transaction
    log.warning("schedule paused", extra={"event": "schedule_paused", "schedule": schedule.name})


def count_outcomes(limit: int = 1000) -> int:
    """Fold the outcomes of finished runs into their schedules' failure counts, in tick order."""
    pending = (
        ScheduleRun.objects.filter(status=ScheduleRun.Status.FIRED, outcome="")
        .filter(job__status__in=FINISHED)
        .values_list("schedule_id", flat=True)
        .distinct()[:limit]
    )
    paused = 0
    for schedule_id in list(pending):
        with transaction.atomic():
            schedule = (
                Schedule.objects.select_for_update(of=("self",))
                .select_related("function")
                .filter(pk=schedule_id)
                .first()
            )
            if schedule is None:
                continue
            was_enabled = schedule.enabled
            runs = schedule.runs.filter(status=ScheduleRun.Status.FIRED, outcome="").select_related("job")
            for run in runs.order_by("tick_at"):
                if run.job is None:
                    run.outcome = "deleted"
                elif run.job.status not in FINISHED:
                    break  # an earlier run still going: later ones wait, so the count stays in order
                else:
                    run.outcome = run.job.status
                    if run.job.status == Status.SUCCEEDED:
                        schedule.consecutive_failures = 0
                    elif run.job.status != Status.CANCELLED:
                        error = (run.job.error or {}).get("message", "")[:200]
                        _failed(schedule, f"job {run.job_id} {run.job.status}: {error}")
                run.save(update_fields=["outcome"])
            schedule.save()
            schedule_changed_after_commit(schedule)  # its failure count, maybe a pause
            paused += was_enabled and not schedule.enabled
    return paused


def schedule_run_now(*, schedule: Schedule) -> ScheduleRun:
    """A run asked for by hand (overlap does not apply); its outcome counts like any other's.

    A refusal of its invocation (the tenant's rate or budget, a disabled function, a failed
    version, an alias deleted since the schedule was saved) is raised to the caller, who is there
    to see it, and writes nothing: no refused run, no failure counted towards pausing the
    schedule, so refused requests cannot pile up rows."""
    with transaction.atomic():
        schedule = (
            Schedule.objects.select_for_update(of=("self",))
            .select_related("tenant__quota", "function")
            .get(pk=schedule.pk)
        )
        job, _ = job_submit(
            tenant=schedule.tenant,
            api_key=None,
            spec=invocation_of(schedule),
            origin=Origin.of_schedule(schedule),
        )
        now = timezone.now()
        run = ScheduleRun.objects.create(schedule=schedule, tick_at=now, manual=True, status="fired", job=job)
        schedule.last_fire_at = now
        schedule.save(update_fields=["last_fire_at", "updated_at"])
        schedule_changed_after_commit(schedule)
        return run
