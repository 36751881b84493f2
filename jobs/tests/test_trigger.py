"""Every job records who or what asked for it (an API key, a dashboard user, a schedule), by the name
it had then, and the API shows it; another tenant never sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from functions.services import deploy
from jobs.models import Job, Trigger
from jobs.services.submit import JobSpec, Origin, job_submit
from schedules.models import ScheduleRun
from schedules.services import crontab, manage, ticks

pytestmark = pytest.mark.django_db(transaction=True)

ADD = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}
T0 = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)


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


def web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def recorded(job_id) -> tuple:
    job = Job.objects.get(pk=job_id)
    return job.trigger, job.trigger_name, job.submitted_by_id, job.schedule_id


def test_an_api_submission_records_its_key_by_name_and_the_api_shows_it(alice, bob):
    answer = alice.post_job(ADD)
    assert answer.status_code == 202
    assert answer.json()["trigger"] == {"kind": "api_key", "name": "acme key"}
    job_id = answer.json()["id"]
    assert recorded(job_id) == (Trigger.API_KEY, "acme key", None, None)
    assert Job.objects.get(pk=job_id).api_key_id == alice.api_key.pk
    assert alice.client.get(f"/api/v1/jobs/{job_id}").json()["trigger"] == {
        "kind": "api_key",
        "name": "acme key",
    }
    listed = alice.client.get("/api/v1/jobs").json()
    assert [job["trigger"] for job in listed["results"]] == [{"kind": "api_key", "name": "acme key"}]
    assert bob.client.get(f"/api/v1/jobs/{job_id}").status_code == 404  # never another tenant's


def test_a_batch_and_an_invocation_record_the_key(alice, adder):
    batch = alice.client.post("/api/v1/jobs/batch", {"jobs": [ADD, ADD]}, format="json")
    assert batch.status_code == 202, batch.content
    invoked = alice.client.post("/api/v1/functions/adder/invoke", {"args": [1, 2]}, format="json")
    ids = [job["id"] for job in batch.json()["jobs"]] + [invoked.json()["id"]]
    assert [recorded(i) for i in ids] == [(Trigger.API_KEY, "acme key", None, None)] * 3
    assert invoked.json()["trigger"] == {"kind": "api_key", "name": "acme key"}


def test_the_dashboard_records_the_signed_in_user(alice, adder):
    page = web(alice.user)
    form = {"runtime": "python", "handler": "main", "code": ADD["code"], "args": "[2, 3]"}
    form.update(timeout_ms="5000", memory_mb="128", max_retries="0")
    created = page.post("/app/jobs/new", form)
    inline = Job.objects.get(function__isnull=True)
    assert created["Location"] == f"/app/jobs/{inline.id}/"
    assert recorded(inline.id) == (Trigger.DASHBOARD, "alice@acme.test", alice.user.pk, None)
    page.post("/app/functions/adder/invoke", {"qualifier": "", "args": "[4, 5]"})
    invocation = Job.objects.get(function=adder)
    assert recorded(invocation.id) == (Trigger.DASHBOARD, "alice@acme.test", alice.user.pk, None)
    body = alice.client.get(f"/api/v1/jobs/{invocation.id}").json()
    assert body["trigger"] == {"kind": "dashboard", "name": "alice@acme.test"}  # to the same tenant only


def test_a_schedules_tick_and_its_run_now_record_the_schedule(alice, adder):
    quota = alice.tenant.quota
    quota.min_schedule_interval_s, quota.submissions_per_minute = 1, 100_000
    quota.save()
    schedule = manage.schedule_create(
        tenant=alice.tenant,
        name="nightly",
        spec=manage.ScheduleSpec(cron="* * * * *", function="adder", args=[1, 2]),
    )
    schedule.next_fire_at = next(crontab.ticks("* * * * *", "UTC", T0))
    schedule.save()
    ticks.schedules_tick(now=T0 + timedelta(seconds=61))
    by_hand = ticks.schedule_run_now(schedule=schedule)
    runs = list(ScheduleRun.objects.order_by("manual"))
    assert [run.manual for run in runs] == [False, True] and runs[1].pk == by_hand.pk
    for run in runs:
        assert recorded(run.job_id) == (Trigger.SCHEDULE, "nightly", None, schedule.pk)
    manage.schedule_delete(schedule=schedule)  # its jobs stay, and still say which schedule ran them
    assert recorded(runs[0].job_id) == (Trigger.SCHEDULE, "nightly", None, None)
    body = alice.client.get(f"/api/v1/jobs/{runs[0].job_id}").json()
    assert body["trigger"] == {"kind": "schedule", "name": "nightly"}


def test_a_replayed_idempotency_key_keeps_the_first_jobs_trigger(alice):
    first, created = job_submit(
        tenant=alice.tenant,
        api_key=None,
        spec=JobSpec(runtime="python", code=ADD["code"], args=[1, 1]),
        idempotency_key="same",
        origin=Origin.of_user(alice.user),
    )
    again, created_again = job_submit(
        tenant=alice.tenant,
        api_key=alice.api_key,
        spec=JobSpec(runtime="python", code=ADD["code"], args=[1, 1]),
        idempotency_key="same",
    )
    assert created and not created_again and again.pk == first.pk
    assert recorded(first.pk) == (Trigger.DASHBOARD, "alice@acme.test", alice.user.pk, None)


def test_a_job_made_without_an_origin_records_none_and_the_api_says_null(alice):
    job, _ = job_submit(tenant=alice.tenant, api_key=None, spec=JobSpec(runtime="python", code=ADD["code"]))
    assert recorded(job.pk) == ("", "", None, None)
    assert alice.client.get(f"/api/v1/jobs/{job.pk}").json()["trigger"] is None


def test_a_deleted_user_leaves_the_name_and_no_link(alice):
    job, _ = job_submit(
        tenant=alice.tenant,
        api_key=None,
        spec=JobSpec(runtime="python", code=ADD["code"]),
        origin=Origin.of_user(alice.user),
    )
    alice.user.delete()
    assert recorded(job.pk) == (Trigger.DASHBOARD, "alice@acme.test", None, None)


BEFORE = [
    ("jobs", "0008_drop_redundant_job_indexes"),
    ("schedules", "0002_schedule_run_job_set_null_in_the_database"),
]


def latest():
    """Every app's newest migration (0009_trigger's data step runs on the way; later ones too, so
    the tests after this one find the schema their models describe)."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def migrate(target):
    if target is None:
        target = MigrationExecutor(connection).loader.graph.leaf_nodes()
    MigrationExecutor(connection).migrate(target)
    return MigrationExecutor(connection).loader.project_state(target).apps


def test_the_migration_records_what_older_rows_already_say(alice, adder):
    """Jobs from before: one with a key is the key's, one a schedule run names is the schedule's,
    the rest (the dashboard's, whose user nobody wrote down) stay unrecorded."""
    quota = alice.tenant.quota
    quota.min_schedule_interval_s = 1
    quota.save()
    schedule = manage.schedule_create(
        tenant=alice.tenant, name="hourly", spec=manage.ScheduleSpec(cron="0 * * * *", function="adder")
    )
    apps = migrate(BEFORE)
    try:
        OldJob = apps.get_model("jobs", "Job")  # noqa: N806 - a model class
        OldRun = apps.get_model("schedules", "ScheduleRun")  # noqa: N806

        def old(**fields):
            return OldJob.objects.create(
                tenant_id=alice.tenant.pk,
                runtime="python",
                code="x",
                timeout_ms=1000,
                memory_mb=128,
                **fields,
            )

        keyed, scheduled, dashboard = old(api_key_id=alice.api_key.pk), old(), old()
        OldRun.objects.create(schedule_id=schedule.pk, tick_at=T0, status="fired", job_id=scheduled.pk)
    finally:
        migrate(latest())
    assert recorded(keyed.pk) == (Trigger.API_KEY, "acme key", None, None)
    assert recorded(scheduled.pk) == (Trigger.SCHEDULE, "hourly", None, schedule.pk)
    assert recorded(dashboard.pk) == ("", "", None, None)
    assert alice.client.get(f"/api/v1/jobs/{dashboard.pk}").json()["trigger"] is None
