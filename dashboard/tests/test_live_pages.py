"""The functions list, a function's page and the schedules pages are live like the jobs list: the
services publish ``function`` and ``schedule`` events (and job status events name the function and
schedule of the job) to the tenant's group, and each page's regions re-fetch the page for the events
that concern them. Real Redis channel layer and publisher thread; no Docker."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from functions.models import FunctionVersion
from functions.services import aliases, builds, deploy
from jobs import events
from jobs.models import Job, Status
from schedules.services import crontab, manage, ticks

from .pages import signed_in
from .test_consumers import communicator, receive_until

pytestmark = pytest.mark.django_db(transaction=True)

CODE = "def main(a, b):\n    return a + b\n"
T0 = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def published(monkeypatch):
    """Every live event published, as (group, event), in order."""
    seen: list[tuple[str, dict]] = []
    real = events.publish

    def record(group, event):
        seen.append((group, event))
        real(group, event)

    monkeypatch.setattr(events, "publish", record)
    return seen


@pytest.fixture
def adder(alice):
    function, _ = deploy.function_create(
        tenant=alice.tenant,
        user=alice.user,
        name="adder",
        runtime="python",
        spec=deploy.VersionSpec(code=CODE),
    )
    return function


def of_kind(published, kind: str, group: str) -> list[dict]:
    return [event for g, event in published if g == group and event["kind"] == kind]


def test_a_functions_changes_and_its_jobs_are_told_to_its_tenant(alice, adder, published):
    tenant = events.tenant_group(alice.tenant.id)
    deploy.version_create(function=adder, user=alice.user, spec=deploy.VersionSpec(code=CODE + "# v2\n"))
    aliases.alias_set(function=adder, name="prod", version=2)
    building = deploy.version_create(
        function=adder, user=alice.user, spec=deploy.VersionSpec(code=CODE, requirements="six==1.16.0\n")
    )
    builds._version_failed(FunctionVersion.objects.select_related("function").get(pk=building.pk), "no index")
    assert of_kind(published, "function", tenant) == [{"kind": "function", "function": "adder"}] * 4
    job_id = alice.client.post(
        "/api/v1/functions/adder/invoke?qualifier=prod", {"args": [1, 2]}, format="json"
    ).json()["id"]
    statuses = of_kind(published, "status", tenant)
    assert statuses[0] == {
        "kind": "status",
        "job": job_id,
        "status": "queued",
        "attempt": 0,
        "runtime": "python",
        "function": "adder",
    }
    inline = alice.post_job({"runtime": "python", "code": CODE, "args": [1, 2]}).json()["id"]
    assert all(
        "function" not in e and "schedule" not in e
        for e in of_kind(published, "status", tenant)
        if e["job"] == inline
    )


def test_a_schedules_ticks_runs_and_edits_are_told_to_its_tenant(alice, adder, published):
    tenant = events.tenant_group(alice.tenant.id)
    quota = alice.tenant.quota
    quota.min_schedule_interval_s, quota.submissions_per_minute = 1, 100_000
    quota.save()
    schedule = manage.schedule_create(
        tenant=alice.tenant,
        name="often",
        spec=manage.ScheduleSpec(cron="* * * * *", function="adder", args=[1, 2]),
    )
    schedule.next_fire_at = next(crontab.ticks("* * * * *", "UTC", T0))
    schedule.save()
    ticks.schedules_tick(now=T0 + timedelta(seconds=61))  # fires
    job = Job.objects.get(schedule=schedule)
    Job.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED, finished_at=T0 + timedelta(seconds=62))
    ticks.count_outcomes()  # counts it
    manage.schedule_update(schedule=schedule, spec=manage.ScheduleSpec(enabled=False))  # paused
    manage.schedule_delete(schedule=schedule)
    assert of_kind(published, "schedule", tenant) == [{"kind": "schedule", "schedule": "often"}] * 5
    queued = [e for e in of_kind(published, "status", tenant) if e["job"] == str(job.pk)][0]
    assert (queued["status"], queued["schedule"], queued["function"]) == ("queued", "often", "adder")


def test_a_function_event_reaches_the_tenants_sockets_only(alice, bob, adder):
    mine = communicator(f"/ws/tenants/{alice.tenant.slug}/", alice.user)
    theirs = communicator(f"/ws/tenants/{bob.tenant.slug}/", bob.user)

    async def scenario():
        assert (await mine.connect(timeout=5))[0] and (await theirs.connect(timeout=5))[0]
        await mine.receive_json_from(timeout=5)
        await theirs.receive_json_from(timeout=5)
        await sync_to_async(deploy.version_create)(
            function=adder, user=alice.user, spec=deploy.VersionSpec(code=CODE + "# v2\n")
        )
        seen = await receive_until(mine, lambda m: m["kind"] == "function")
        await sync_to_async(events.flush)()
        nothing = await theirs.receive_nothing(timeout=0.5)
        await mine.disconnect()
        await theirs.disconnect()
        return seen, nothing

    seen, nothing = async_to_sync(scenario)()
    assert seen[-1]["function"] == "adder" and isinstance(seen[-1]["seq"], int)
    assert nothing  # bob's tenant heard nothing of alice's function


def test_the_pages_are_their_own_live_source_and_keep_the_flash_for_the_next_page(alice, bob, adder):
    web = signed_in(alice.user)
    quota = alice.tenant.quota
    quota.min_schedule_interval_s = 1
    quota.save()
    manage.schedule_create(
        tenant=alice.tenant, name="hourly", spec=manage.ScheduleSpec(cron="0 * * * *", function="adder")
    )
    regions = {
        "/app/functions/": [
            'id="function-rows"',
            'data-live-on="status function" data-live-filter="function"',
        ],
        "/app/functions/adder/": [
            'id="function-versions"',
            'data-live-on="function" data-live-filter="function=adder"',
            'id="function-jobs"',
            'data-live-on="status function" data-live-filter="function=adder"',
        ],
        "/app/schedules/": [
            'id="schedule-rows"',
            'data-live-on="status schedule" data-live-filter="schedule"',
        ],
        "/app/schedules/hourly/": ['id="schedule-runs"', 'data-live-filter="schedule=hourly"'],
    }
    for path, wanted in regions.items():
        page = web.get(path)
        text = page.content.decode()
        assert f'data-live-ws="/ws/tenants/{alice.tenant.slug}/"' in text, path
        for piece in wanted:
            assert piece in text, (path, piece)
        assert re.search(r'data-live-src="[^"]*\?partial=1" data-live-pick', text), path
        assert not page.has_header("Cache-Control") or "no-store" not in page["Cache-Control"]
        region = web.get(f"{path}?partial=1")
        assert region.status_code == 200 and region["Cache-Control"] == "no-store", path
    # a flash waiting for the next page survives a region's fetch in the background
    web.post("/app/functions/adder/alias", {"alias": "prod", "version": "1"})
    assert b"Alias prod now points to version 1" in web.get("/app/functions/adder/?partial=1").content
    assert b"Alias prod now points to version 1" in web.get("/app/functions/adder/").content
    assert b"Alias prod now points to version 1" not in web.get("/app/functions/adder/").content  # once
    # another tenant's user: the function and the schedule are not found, partial or not
    bobs = signed_in(bob.user)
    for path in ("/app/functions/adder/", "/app/schedules/hourly/"):
        assert bobs.get(f"{path}?partial=1").status_code == 404, path
    assert b"adder" not in bobs.get("/app/functions/?partial=1").content
