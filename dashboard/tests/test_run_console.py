"""Every run identifiable: the jobs list's what/trigger/duration columns, the job page as a run console
(status strip, progress, errors in plain words, details on demand) and "invoke again"; through
Django's test client on PostgreSQL and Redis, no Docker (outcomes are written to the rows)."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Membership
from accounts.services import membership_set, user_get_or_create
from functions.services import aliases, deploy
from jobs.models import Job, Status, Trigger
from schedules.services import manage, ticks

from .pages import ADD, signed_in
from .test_job_errors import PY_CHAINED

pytestmark = pytest.mark.django_db(transaction=True)

RESIZE = "def main(width, height):\n    return [width // 2, height // 2]\n"


@pytest.fixture
def web(alice):
    return signed_in(alice.user)


@pytest.fixture
def resize(alice):
    """A function with versions 1 and 2, and the alias prod on version 2."""
    function, _ = deploy.function_create(
        tenant=alice.tenant,
        user=alice.user,
        name="resize",
        runtime="python",
        spec=deploy.VersionSpec(code=RESIZE),
    )
    deploy.version_create(function=function, user=alice.user, spec=deploy.VersionSpec(code=RESIZE + "# v2\n"))
    aliases.alias_set(function=function, name="prod", version=2)
    return function


def row(page: str, job_id) -> str:
    """The <tr> of one job in a rendered list."""
    found = re.search(rf'<tr data-job="{job_id}".*?</tr>', page, re.S)
    assert found, f"no row for {job_id}"
    return found.group(0)


def cell(tr: str, label: str) -> str:
    found = re.search(rf'<td data-label="{label}"[^>]*>(.*?)</td>', tr, re.S)
    assert found, f"no {label} cell in {tr}"
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))).strip()


def test_the_list_says_what_ran_and_who_asked_for_it(alice, bob, web, resize):
    by_key = alice.post_job(ADD).json()["id"]
    node = alice.post_job({"runtime": "node", "code": "\n\n  // adds\nfunction main(a, b) { return a + b; }"})
    long_line = "def main(" + ", ".join(f"argument_{i}" for i in range(12)) + "):\n    return 1\n"
    long_job = alice.post_job({"runtime": "python", "code": "\n   \n" + long_line}).json()["id"]
    via_prod = alice.client.post(
        "/api/v1/functions/resize/invoke?qualifier=prod", {"args": [640, 480]}, format="json"
    )
    form = {"runtime": "python", "handler": "main", "code": ADD["code"], "args": "[2, 3]"}
    web.post("/app/jobs/new", {**form, "timeout_ms": "5000", "memory_mb": "128", "max_retries": "0"})
    from_dashboard = Job.objects.get(trigger=Trigger.DASHBOARD).pk
    web.post("/app/functions/resize/invoke", {"qualifier": "1", "args": "[10, 20]"})
    version_one = Job.objects.get(trigger=Trigger.DASHBOARD, function=resize).pk
    quota = alice.tenant.quota
    quota.min_schedule_interval_s = 1
    quota.save()
    nightly = manage.schedule_create(
        tenant=alice.tenant,
        name="nightly",
        spec=manage.ScheduleSpec(cron="0 3 * * *", function="resize", args=[1, 1]),
    )
    scheduled = ticks.schedule_run_now(schedule=nightly).job_id

    page = web.get("/app/jobs/").content.decode()
    expect = {
        by_key: ("inline · python · def main(a, b):", "API key acme key"),
        node.json()["id"]: ("inline · node · // adds", "API key acme key"),
        via_prod.json()["id"]: ("resize@v2 via prod", "API key acme key"),
        from_dashboard: ("inline · python · def main(a, b):", "alice@acme.test"),
        version_one: ("resize@v1", "alice@acme.test"),
        scheduled: ("resize@v2", "schedule nightly"),
    }
    for job_id, (what, trigger) in expect.items():
        tr = row(page, job_id)
        assert (cell(tr, "What"), cell(tr, "Trigger")) == (what, trigger), job_id
    long_what = cell(row(page, long_job), "What")
    assert long_what.startswith("inline · python · def main(argument_0, argument_1,") and long_what.endswith(
        "…"
    )
    assert len(long_what) == len("inline · python · ") + 48
    # links: the job (first cell, the row's link), the function, the schedule
    tr = row(page, scheduled)
    assert re.search(rf'<tr data-job="{scheduled}" class="row-link"', tr)
    first = re.search(r"<td[^>]*>(.*?)</td>", tr, re.S).group(1)
    assert f'href="/app/jobs/{scheduled}/"' in first
    assert 'href="/app/functions/resize/"' in tr and 'href="/app/schedules/nightly/"' in tr
    for label in ("Job", "What", "Trigger", "Status", "Duration", "Attempts", "Created"):
        assert f'<td data-label="{label}"' in tr
    # the other tenant's list shows none of it, and its own job's trigger only
    theirs = bob.post_job(ADD).json()["id"]
    bobs = signed_in(bob.user).get("/app/jobs/").content.decode()
    assert "alice@acme.test" not in bobs and "acme key" not in bobs and "nightly" not in bobs
    assert cell(row(bobs, theirs), "Trigger") == "API key globex key"


def test_a_deleted_schedule_and_function_still_name_the_run_without_a_link(alice, web, resize):
    quota = alice.tenant.quota
    quota.min_schedule_interval_s = 1
    quota.save()
    hourly = manage.schedule_create(
        tenant=alice.tenant,
        name="hourly",
        spec=manage.ScheduleSpec(cron="0 * * * *", function="resize", args=[1, 1]),
    )
    job_id = ticks.schedule_run_now(schedule=hourly).job_id
    Job.objects.filter(pk=job_id).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    deploy.function_delete(function=resize)  # its schedules go with it
    tr = row(web.get("/app/jobs/").content.decode(), job_id)
    assert cell(tr, "What") == "resize@v2 (deleted)" and cell(tr, "Trigger") == "schedule hourly (deleted)"
    assert "/app/functions/resize/" not in tr and "/app/schedules/hourly/" not in tr


def test_the_duration_bar_is_relative_to_the_longest_run_on_the_page(alice, web):
    ids = [alice.post_job(ADD).json()["id"] for _ in range(3)]
    for job_id, duration in zip(ids, (100.0, 400.0, None), strict=True):
        Job.objects.filter(pk=job_id).update(duration_ms=duration)
    page = web.get("/app/jobs/").content.decode()
    assert 'style="width: 25%"' in row(page, ids[0]) and cell(row(page, ids[0]), "Duration") == "100 ms"
    assert 'style="width: 100%"' in row(page, ids[1]) and cell(row(page, ids[1]), "Duration") == "400 ms"
    assert "dur-bar" not in row(page, ids[2]) and cell(row(page, ids[2]), "Duration") == "—"


def test_the_list_costs_the_same_queries_for_a_few_jobs_or_a_full_page(alice, web, resize):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert web.get("/app/jobs/").status_code == 200
        return len(captured.captured_queries)

    alice.post_job(ADD)
    alice.client.post("/api/v1/functions/resize/invoke?qualifier=prod", {"args": [1, 2]}, format="json")
    queries()  # the session's and tenancy's first reads
    few = queries()
    for i in range(12):
        alice.post_job({**ADD, "args": [i, i]})
        alice.client.post("/api/v1/functions/resize/invoke", {"args": [i, i]}, format="json")
    assert queries() == few  # no query per row (the code's first line comes with the page's one query)


def test_the_job_page_is_a_run_console(alice, web, resize):
    job_id = alice.client.post(
        "/api/v1/functions/resize/invoke?qualifier=prod", {"args": [640, 480]}, format="json"
    ).json()["id"]
    started = timezone.now() - timedelta(seconds=3)
    Job.objects.filter(pk=job_id).update(status=Status.RUNNING, started_at=started, attempts=1, worker="w-1")
    page = web.get(f"/app/jobs/{job_id}/").content.decode()
    strip = re.search(r'<section class="card summary run-strip".*?</section>', page, re.S).group(0)
    assert 'data-status="running"' in strip and 'data-announce="Job running"' in strip
    assert (
        f'data-since="{started.isoformat()}"' in strip and 'data-prefix="running "' in strip
    )  # job.js ticks it
    assert "resize@v2" in strip and "via" in strip and "acme key" in strip
    assert (
        ">Invoke again</button>" in strip
        and ">Cancel</button>" in strip
        and "Edit and run again" not in strip
    )
    assert 'aria-current="step"' in strip and "running on w-1" in strip
    assert 'id="job-announce" class="sr" role="status" aria-live="polite"' in page
    assert 'class="card log-card running"' in page  # the log tall while it runs
    assert re.search(r'<div id="log" class="log" tabindex="0" role="log" aria-label="Log output"', page)
    # done: the strip says how long it ran; details on demand say the rest in words
    Job.objects.filter(pk=job_id).update(
        status=Status.SUCCEEDED,
        finished_at=started + timedelta(seconds=1.2),
        duration_ms=1200.0,
        result=[320, 240],
    )
    summary = web.get(f"/app/jobs/{job_id}/?partial=1").content.decode()
    assert 'data-announce="Job succeeded in 1.20 s"' in summary and "ran 1.20 s" in summary
    assert "data-since" not in summary and 'aria-current="step"' not in summary
    details = web.get(f"/app/jobs/{job_id}/?partial=1&part=details").content.decode()
    assert "<dt>Retries</dt><dd>none</dd>" in details and "<dt>Time limit</dt>" in details
    assert "w-1" in details and job_id in details
    assert 'class="card log-card"' in web.get(f"/app/jobs/{job_id}/").content.decode()


def test_an_error_is_said_plainly_with_the_runners_and_libraries_frames_behind_a_click(alice, web):
    job_id = alice.post_job(ADD).json()["id"]
    error = {"type": "URLError", "message": "<urlopen error [Errno -3] no name>", "traceback": PY_CHAINED}
    Job.objects.filter(pk=job_id).update(status=Status.FAILED, error=error, finished_at=timezone.now())
    summary = html.unescape(web.get(f"/app/jobs/{job_id}/?partial=1").content.decode())
    shown, hidden = summary.split('<details class="full-error"', 1)
    assert "<b>URLError</b>: <urlopen error no name></p>" in shown  # the headline without the errno
    assert 'File "handler.py", line 3, in main' in shown and "socket.py" not in shown
    assert "socket.py" in hidden and "Full traceback" in hidden
    timed_out = alice.post_job({**ADD, "max_retries": 2}).json()["id"]
    Job.objects.filter(pk=timed_out).update(
        status=Status.TIMED_OUT,
        finished_at=timezone.now(),
        error={
            "type": "Timeout",
            "message": "exceeded the 5000 ms time limit",
            "traceback": "when stopped, the job's process was sleeping after 3 ms of CPU, with 1 threads",
        },
    )
    page = html.unescape(web.get(f"/app/jobs/{timed_out}/").content.decode())
    assert "It ran longer than its time limit of 5.00 s and was stopped." in page
    assert "with 1 thread." in page and "1 threads" not in page
    assert "<dt>Retries</dt><dd>up to 2 retries</dd>" in page


def test_invoke_again_runs_the_function_the_same_way_with_the_same_arguments(alice, bob, web, resize):
    first = alice.client.post(
        "/api/v1/functions/resize/invoke?qualifier=prod", {"args": [640, 480]}, format="json"
    ).json()["id"]
    assert web.get(f"/app/jobs/{first}/invoke-again").status_code == 405  # a POST only
    again = web.post(f"/app/jobs/{first}/invoke-again")
    new = Job.objects.exclude(pk=first).get()
    assert again.status_code == 302 and again["Location"] == f"/app/jobs/{new.id}/"
    assert (new.function_id, new.alias, new.version_number, new.args) == (resize.pk, "prod", 2, [640, 480])
    assert (new.trigger, new.submitted_by_id) == (Trigger.DASHBOARD, alice.user.pk)
    # through a version, not an alias: the same version again
    web.post("/app/functions/resize/invoke", {"qualifier": "1", "args": "[8, 6]"})
    by_version = Job.objects.get(version_number=1)
    web.post(f"/app/jobs/{by_version.id}/invoke-again")
    assert list(Job.objects.filter(version_number=1).values_list("args", "alias")) == [([8, 6], "")] * 2
    # another tenant's user: not found, nothing made; a viewer: refused
    count = Job.objects.count()
    assert signed_in(bob.user).post(f"/app/jobs/{first}/invoke-again").status_code == 404
    viewer = user_get_or_create(email="viv@acme.test", password="pw-viv-1")
    membership_set(tenant=alice.tenant, user=viewer, role=Membership.Role.VIEWER)
    assert signed_in(viewer).post(f"/app/jobs/{first}/invoke-again").status_code == 403
    assert ">Invoke again<" not in signed_in(viewer).get(f"/app/jobs/{first}/").content.decode()
    assert Job.objects.count() == count


def test_an_inline_job_is_run_again_through_the_prefilled_form_not_invoked(alice, web, resize):
    job_id = alice.post_job({**ADD, "args": [7, 8]}).json()["id"]
    page = web.get(f"/app/jobs/{job_id}/").content.decode()
    assert f'href="/app/jobs/new?from={job_id}">Edit and run again</a>' in page and "Invoke again" not in page
    prefilled = web.get(f"/app/jobs/new?from={job_id}").content.decode()
    assert "return a + b" in prefilled and "[7, 8]" in prefilled
    refused = web.post(f"/app/jobs/{job_id}/invoke-again", follow=True)
    assert b"Only an invocation of a deployed function" in refused.content
    assert Job.objects.count() == 1
    # a function deleted since: said on the page, nothing made
    invoked = alice.client.post("/api/v1/functions/resize/invoke", {"args": [1, 1]}, format="json").json()[
        "id"
    ]
    Job.objects.filter(pk=invoked).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    deploy.function_delete(function=resize)
    assert "Invoke again" not in web.get(f"/app/jobs/{invoked}/").content.decode()
    assert web.post(f"/app/jobs/{invoked}/invoke-again").status_code == 302
    assert Job.objects.count() == 2
