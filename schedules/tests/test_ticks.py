"""Schedules against PostgreSQL and Redis with an injected clock (never sleeps): exactly one run per
tick under races and crashes, DST in two zones, overlap, catch-up, and pausing after failures."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from functions.services import aliases, deploy
from jobs.models import Job, Status
from schedules.models import Schedule, ScheduleRun
from schedules.services import crontab, ticks
from schedules.services.manage import ScheduleSpec, schedule_create
from webhooks.models import OutboxEvent, WebhookEndpoint

T0 = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def adder(alice):
    function, _ = deploy.function_create(
        tenant=alice.tenant,
        user=None,
        name="adder",
        runtime="python",
        spec=deploy.VersionSpec(code="def main(a, b):\n    return a + b\n"),
    )
    return function


def make(alice, name="every-minute", cron="* * * * *", at=T0, **fields) -> Schedule:
    """A schedule whose next tick is the first after ``at`` (as if created then)."""
    quota = alice.tenant.quota
    quota.min_schedule_interval_s, quota.submissions_per_minute = 1, 100_000
    quota.save()
    schedule = schedule_create(
        tenant=alice.tenant, name=name, spec=ScheduleSpec(cron=cron, function="adder", args=[1, 2], **fields)
    )
    schedule.next_fire_at = next(crontab.ticks(cron, schedule.timezone, at))
    schedule.save()
    return schedule


def finish(run: ScheduleRun, status: str = Status.SUCCEEDED, message: str = "") -> None:
    error = {"type": "E", "message": message, "traceback": ""} if status != Status.SUCCEEDED else None
    Job.objects.filter(pk=run.job_id).update(status=status, finished_at=run.tick_at, error=error)


@pytest.mark.django_db
def test_each_tick_fires_once_and_the_next_one_is_armed(alice, adder):
    schedule = make(alice)
    assert ticks.schedules_tick(now=T0 + timedelta(seconds=30))["ticks_fired"] == 0  # not due yet
    counts = ticks.schedules_tick(now=T0 + timedelta(seconds=61))
    assert counts["ticks_fired"] == 1
    again = ticks.schedules_tick(now=T0 + timedelta(seconds=62))
    assert again["ticks_fired"] == 0  # the same tick is never fired twice
    run = ScheduleRun.objects.get()
    assert run.tick_at == T0 + timedelta(minutes=1) and run.status == "fired"
    assert run.job.function_name == "adder" and run.job.args == [1, 2]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(minutes=2)


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_racing_fire_each_tick_exactly_once(alice, adder):
    make(alice)
    now = T0 + timedelta(minutes=1, seconds=1)
    barrier = threading.Barrier(4)
    errors = []

    def scheduler():
        try:
            barrier.wait()
            for _ in range(5):
                ticks.schedules_tick(now=now)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert ScheduleRun.objects.count() == 1 and Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_crash_in_the_middle_of_a_tick_leaves_nothing_and_the_tick_fires_once_later(
    alice, adder, monkeypatch
):
    make(alice)
    now = T0 + timedelta(minutes=1, seconds=1)

    def crash(**kwargs):
        raise SystemExit("the scheduler died after inserting the run, before the job")

    monkeypatch.setattr(ticks, "job_submit", crash)
    with pytest.raises(SystemExit):
        ticks.schedules_tick(now=now)
    assert not ScheduleRun.objects.exists() and not Job.objects.exists()  # rolled back, all of it
    monkeypatch.undo()
    assert ticks.schedules_tick(now=now)["ticks_fired"] == 1
    assert ticks.schedules_tick(now=now)["ticks_fired"] == 0
    assert ScheduleRun.objects.count() == 1 and Job.objects.count() == 1


@pytest.mark.parametrize(
    ("zone", "cron", "start", "expected"),
    [
        # spring forward: 02:30 does not exist on 28 March; Debian's cron runs it at 03:00 that day
        ("Europe/Berlin", "30 2 * * *", datetime(2027, 3, 26, 12, tzinfo=UTC),
         ["2027-03-27T01:30", "2027-03-28T01:00", "2027-03-29T00:30"]),
        # fall back: 02:30 happens twice on 31 October; it fires once
        ("Europe/Berlin", "30 2 * * *", datetime(2027, 10, 29, 12, tzinfo=UTC),
         ["2027-10-30T00:30", "2027-10-31T00:30", "2027-11-01T01:30"]),
        # an hourly job runs in both of the repeated hours (as cron does for wildcard hours)
        ("Europe/Berlin", "0 * * * *", datetime(2027, 10, 30, 23, tzinfo=UTC),
         ["2027-10-31T00:00", "2027-10-31T01:00", "2027-10-31T02:00"]),
        ("America/New_York", "30 2 * * *", datetime(2027, 3, 13, 12, tzinfo=UTC),
         ["2027-03-14T07:00", "2027-03-15T06:30", "2027-03-16T06:30"]),
        ("America/New_York", "30 1 * * *", datetime(2027, 11, 6, 12, tzinfo=UTC),
         ["2027-11-07T05:30", "2027-11-08T06:30", "2027-11-09T06:30"]),
    ],
)  # fmt: skip
def test_daylight_saving_changes_follow_debian_cron(zone, cron, start, expected):
    fired = []
    for when in crontab.ticks(cron, zone, start):
        fired.append(when.strftime("%Y-%m-%dT%H:%M"))
        if len(fired) == len(expected):
            break
    assert fired == expected  # UTC times: no tick lost, none doubled


@pytest.mark.django_db
def test_a_schedule_across_a_dst_change_fires_once_per_day(alice, adder):
    schedule = make(alice, name="nightly", cron="30 2 * * *", timezone="Europe/Berlin", at=datetime(
        2027, 3, 27, 12, tzinfo=UTC))  # fmt: skip
    now = datetime(2027, 3, 27, 12, tzinfo=UTC)
    while now < datetime(2027, 3, 30, 12, tzinfo=UTC):  # three days in 5-minute passes
        now += timedelta(minutes=5)
        ticks.schedules_tick(now=now)
    schedule.refresh_from_db()
    fired = [r.tick_at.isoformat() for r in schedule.runs.order_by("tick_at")]
    assert fired == ["2027-03-28T01:00:00+00:00", "2027-03-29T00:30:00+00:00", "2027-03-30T00:30:00+00:00"]


@pytest.mark.django_db
def test_overlap_skip_skips_a_tick_while_the_previous_run_is_unfinished(alice, adder):
    make(alice, overlap="skip")
    ticks.schedules_tick(now=T0 + timedelta(minutes=1, seconds=1))
    ticks.schedules_tick(now=T0 + timedelta(minutes=2, seconds=1))
    first, second = ScheduleRun.objects.order_by("tick_at")
    assert first.status == "fired" and second.status == "skipped_overlap" and second.job is None
    finish(first)
    ticks.schedules_tick(now=T0 + timedelta(minutes=3, seconds=1))
    assert ScheduleRun.objects.order_by("tick_at").last().status == "fired"


@pytest.mark.django_db
def test_overlap_allow_fires_regardless(alice, adder):
    make(alice, overlap="allow")
    ticks.schedules_tick(now=T0 + timedelta(minutes=1, seconds=1))
    ticks.schedules_tick(now=T0 + timedelta(minutes=2, seconds=1))
    assert [r.status for r in ScheduleRun.objects.all()] == ["fired", "fired"]


@pytest.mark.django_db
def test_ticks_missed_while_down_are_skipped_with_catch_up_none(alice, adder):
    schedule = make(alice, catch_up="none")
    back = T0 + timedelta(hours=3, seconds=10)  # the service was down for three hours
    counts = ticks.schedules_tick(now=back)
    # the 179 ticks of the outage are skipped; the current one (10 s ago) is on time and fires
    assert counts["ticks_fired"] == 1 and counts["ticks_missed"] == 1
    assert [r.tick_at for r in ScheduleRun.objects.all()] == [T0 + timedelta(hours=3)]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(hours=3, minutes=1) and schedule.missed_ticks == 1


@pytest.mark.django_db
def test_ticks_missed_while_down_run_once_with_catch_up_latest(alice, adder):
    make(alice, cron="0 * * * *", catch_up="latest")  # hourly
    back = T0 + timedelta(hours=5, minutes=30)
    assert ticks.schedules_tick(now=back)["ticks_fired"] == 1
    run = ScheduleRun.objects.get()
    assert run.tick_at == T0 + timedelta(hours=5)  # one run, for the latest of the missed ticks
    assert ticks.schedules_tick(now=back + timedelta(seconds=5))["ticks_fired"] == 0


@pytest.mark.django_db
def test_consecutive_failures_pause_the_schedule_with_the_reason_and_an_event(alice, adder):
    WebhookEndpoint.objects.create(
        tenant=alice.tenant, url="https://example.com/h", events=["schedule.paused"], secret="whsec_x"
    )
    schedule = make(alice, max_failures=2, overlap="allow")
    ticks.schedules_tick(now=T0 + timedelta(minutes=1, seconds=1))
    ticks.schedules_tick(now=T0 + timedelta(minutes=2, seconds=1))
    first, second = ScheduleRun.objects.order_by("tick_at")
    finish(first, Status.FAILED, "boom 1")
    assert ticks.count_outcomes() == 0
    finish(second, Status.DEAD, "boom 2")
    assert ticks.count_outcomes() == 1
    schedule.refresh_from_db()
    assert not schedule.enabled and schedule.next_fire_at is None
    assert "2 consecutive failed runs" in schedule.paused_reason and "boom 2" in schedule.paused_reason
    event = OutboxEvent.objects.get(type="schedule.paused")
    assert event.data["schedule"] == "every-minute"
    assert ticks.schedules_tick(now=T0 + timedelta(minutes=5))["ticks_fired"] == 0


@pytest.mark.django_db
def test_a_success_resets_the_failure_count(alice, adder):
    schedule = make(alice, max_failures=2, overlap="allow")
    for minute in (1, 2, 3):
        ticks.schedules_tick(now=T0 + timedelta(minutes=minute, seconds=1))
    first, second, third = ScheduleRun.objects.order_by("tick_at")
    finish(first, Status.FAILED)
    finish(second, Status.SUCCEEDED)
    finish(third, Status.FAILED)
    ticks.count_outcomes()
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.consecutive_failures == 1


@pytest.mark.django_db
def test_a_refused_invocation_is_a_failed_run(alice, adder):
    schedule = make(alice, max_failures=1)
    deploy.function_set_disabled(function=adder, disabled=True, reason="abuse")
    ticks.schedules_tick(now=T0 + timedelta(minutes=1, seconds=1))
    run = ScheduleRun.objects.get()
    assert run.status == "refused" and "disabled" in run.error
    schedule.refresh_from_db()
    assert not schedule.enabled and "refused" in schedule.paused_reason


@pytest.mark.django_db
def test_a_tick_of_a_schedule_whose_alias_was_deleted_is_a_failed_run_saying_so(
    alice, adder, django_capture_on_commit_callbacks
):
    """What the scheduler records for it (as for any refused run): a refused run whose error names
    the alias and the fix, a failure counted, and the schedule paused after max_failures of them."""
    with django_capture_on_commit_callbacks(execute=True):  # the invocation cache sees each change
        aliases.alias_set(function=adder, name="prod", version=1)
    schedule = make(alice, max_failures=2, qualifier="prod")
    with django_capture_on_commit_callbacks(execute=True):
        aliases.alias_delete(function=adder, name="prod")
    ticks.schedules_tick(now=T0 + timedelta(minutes=1, seconds=1))
    run = ScheduleRun.objects.get()
    assert run.status == "refused" and run.outcome == "refused" and run.job is None
    assert "adder has no alias 'prod'" in run.error and "change the schedule's qualifier" in run.error
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.consecutive_failures == 1
    ticks.schedules_tick(now=T0 + timedelta(minutes=2, seconds=1))
    schedule.refresh_from_db()
    assert not schedule.enabled and schedule.consecutive_failures == 2
    assert "refused" in schedule.paused_reason and "no alias 'prod'" in schedule.paused_reason
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_run_now_fires_a_manual_run_without_moving_the_ticks(alice, adder):
    schedule = make(alice)
    before = schedule.next_fire_at
    run = ticks.schedule_run_now(schedule=schedule)
    assert run.manual and run.status == "fired" and run.job is not None
    schedule.refresh_from_db()
    assert schedule.next_fire_at == before
