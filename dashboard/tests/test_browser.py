"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against uvicorn,
a worker and the reconciler running as processes on the test database, jobs running in Docker.

Screenshots of the main pages are saved under var/screenshots/ as test artifacts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

from jobs.models import Job
from jobs.tests.live_server import post_json
from jobs.tests.test_chaos import Stack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "screenshots"
TICKER = (
    "import time\n\ndef main(n):\n    for i in range(n):\n        print(f'tick {i}', "
    "flush=True)\n        time.sleep(0.7)\n    return n\n"
)


@pytest.fixture
def server(alice, bob):
    stack = Stack(settings.REDIS_URL)
    stack.start("reconciler", "scheduler")
    stack.start("worker", "worker")
    stack.start("builder", "worker", "--builds")  # job workers never take a build
    yield stack.start_web()
    stack.stop()


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # still plain synchronous code (Django's documented setting for this case)
    import os

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-background-networking"]
        )
        yield instance
        instance.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


def sign_in(browser, server, email: str, password: str, **context):
    page = browser.new_context(**context).new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Cancel this job?" and friends
    page.goto(server + "/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(server + "/app/")
    return page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def submit(server: str, persona, body: dict) -> str:
    """POST /api/v1/jobs on the live server with the persona's key -> job id."""
    _, answer = post_json(server + "/api/v1/jobs", persona.key, body, timeout=10)
    return answer["id"]


def mark_page(page) -> None:
    """A marker that a reload would wipe: the test checks it survives."""
    page.evaluate("window.__noReload = 'still here'")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__noReload") == "still here"


def test_write_a_function_run_it_and_watch_it_live(browser, server, alice):
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.click("nav >> text=New job")
    expect(page.locator(".CodeMirror")).to_be_visible()
    # write the function with the keyboard; the editor indents after ":" and Shift-Tab dedents
    page.click(".CodeMirror")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    for line in [
        "import time",
        "",
        "def main(n):",
        "for i in range(n):",
        "print(f'tick {i}', flush=True)",
        "time.sleep(0.7)",
    ]:
        page.keyboard.type(line)
        page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")
    page.keyboard.type("return n")
    page.keyboard.press("Enter")
    assert page.evaluate("window.LambdasiteEditor.getValue()") == TICKER
    page.fill("#args", "[3")
    expect(page.locator("#args-error")).to_contain_text("Not valid JSON")
    page.fill("#args", "[3]")
    expect(page.locator("#args-error")).to_be_hidden()
    shot(page, "new-job")
    page.click("#run")

    expect(page).to_have_url(re.compile(r"/app/jobs/[0-9a-f-]{36}/$"))
    job_id = page.url.rstrip("/").rsplit("/", 1)[1]
    mark_page(page)
    badge = page.locator(f'.summary [data-job-status="{job_id}"]')
    # the first line shows up while the job is still running, then the others, then success
    expect(page.locator("#log .line").first).to_have_text(re.compile(r"tick 0$"), timeout=30_000)
    assert page.locator("#log .line").count() < 3
    expect(badge).to_have_text("running")
    expect(page.locator("#log .line")).to_have_count(3, timeout=15_000)
    expect(badge).to_have_text("succeeded", timeout=15_000)
    expect(page.locator("#job-result")).to_have_text("3")
    assert [text[-6:] for text in page.locator("#log .line").all_inner_texts()] == [
        "tick 0",
        "tick 1",
        "tick 2",
    ]
    expect(page.locator(".timeline li")).to_have_count(1)
    assert_not_reloaded(page)
    state = page.evaluate("window.Lambdasite.state")
    assert (
        state["mode"] == "live" and state["polls"] == 0 and state["events"] >= 4
    )  # 3 log batches and succeeded (running may precede the socket)
    shot(page, "job-detail")
    assert Job.objects.get(pk=job_id).status == "succeeded"


def test_jobs_list_shows_new_jobs_and_status_changes_live(browser, server, alice):
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.goto(server + "/app/jobs/")
    expect(page.locator(".empty")).to_contain_text("No jobs yet")
    mark_page(page)
    expect(page.locator("html[data-live=live]")).to_have_count(1, timeout=10_000)
    ids = [
        submit(server, alice, {"runtime": "python", "code": "def main(i):\n    return i\n", "args": [i]})
        for i in range(3)
    ]
    for job_id in ids:
        expect(page.locator(f'[data-job-status="{job_id}"]')).to_have_text("succeeded", timeout=30_000)
    assert page.locator("tbody tr").first.get_attribute("data-job") == ids[-1]  # newest on top
    assert_not_reloaded(page)
    shot(page, "jobs-list")
    page.goto(server + "/app/")
    expect(page.locator(".stat").first).to_contain_text("3")
    shot(page, "overview")
    phone = sign_in(browser, server, "alice@acme.test", "pw-acme", viewport={"width": 390, "height": 844})
    for path, name in [
        ("/app/jobs/", "jobs-list-phone"),
        (f"/app/jobs/{ids[0]}/", "job-detail-phone"),
        ("/app/", "overview-phone"),
        ("/app/jobs/new", "new-job-phone"),
    ]:
        phone.goto(server + path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, (
            path
        )  # nothing wider than the phone
        shot(phone, name)


def test_cancel_a_long_job_from_its_page(browser, server, alice):
    job_id = submit(
        server,
        alice,
        {"runtime": "python", "code": "import time\ndef main():\n    time.sleep(60)\n", "timeout_ms": 60000},
    )
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.goto(f"{server}/app/jobs/{job_id}/")
    badge = page.locator(f'.summary [data-job-status="{job_id}"]')
    expect(badge).to_have_text("running", timeout=30_000)
    page.click("button:has-text('Cancel')")
    expect(page.locator(".msg.success")).to_contain_text("Cancel requested")
    expect(badge).to_have_text("cancelled", timeout=10_000)
    expect(page.locator("button:has-text('Retry')")).to_be_visible()
    assert Job.objects.get(pk=job_id).status == "cancelled"


def test_a_job_that_ends_without_output_stops_promising_any(browser, server, alice):
    job_id = submit(
        server,
        alice,
        {"runtime": "python", "code": "import time\ndef main():\n    time.sleep(2)\n    return 1\n"},
    )
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.goto(f"{server}/app/jobs/{job_id}/")
    mark_page(page)
    badge = page.locator(f'.summary [data-job-status="{job_id}"]')
    expect(page.locator("#log-empty")).to_contain_text("No output yet")
    expect(badge).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#log-empty")).to_have_text("No output.")
    assert_not_reloaded(page)  # the live status event changed it, not a reload


def test_another_tenants_user_gets_404_for_the_job_page(browser, server, alice):
    job_id = submit(
        server, alice, {"runtime": "python", "code": "def main():\n    return 'acme-private-7f3a'\n"}
    )
    page = sign_in(browser, server, "bob@globex.test", "pw-globex")
    response = page.goto(f"{server}/app/jobs/{job_id}/")
    assert response.status == 404
    assert "acme-private-7f3a" not in page.content()


def test_without_a_websocket_the_page_polls_and_still_converges(browser, server, alice):
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.route_web_socket(re.compile(r".*/ws/.*"), lambda ws: ws.close())  # the socket never gets through
    job_id = submit(
        server,
        alice,
        {
            "runtime": "python",
            "code": "import time\ndef main():\n    print('hello', flush=True)\n    time.sleep(1)\n   "
            " return 42\n",
        },
    )
    page.goto(f"{server}/app/jobs/{job_id}/")
    mark_page(page)
    expect(page.locator(f'.summary [data-job-status="{job_id}"]')).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#log .line")).to_have_count(1)
    expect(page.locator("#live-status")).to_contain_text("refreshing every few seconds")
    state = page.evaluate("window.Lambdasite.state")
    assert state["mode"] == "polling" and state["polls"] >= 1 and state["events"] == 0
    assert_not_reloaded(page)


def test_a_missed_event_is_noticed_and_the_page_catches_up(browser, server, alice):
    """The socket drops the event that carries 'tick 1': the next event's sequence number shows
    the gap, and the page fetches what it missed, so every line shows, once and in order."""
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    dropped = []

    def lossy(ws):
        upstream = ws.connect_to_server()

        def from_server(message):
            if "tick 1" in message and not dropped:
                dropped.append(message)
                return
            ws.send(message)

        upstream.on_message(from_server)
        ws.on_message(lambda message: upstream.send(message))

    page.route_web_socket(re.compile(r".*/ws/jobs/.*"), lossy)
    job_id = submit(server, alice, {"runtime": "python", "code": TICKER, "args": [3]})
    page.goto(f"{server}/app/jobs/{job_id}/")
    mark_page(page)
    expect(page.locator(f'.summary [data-job-status="{job_id}"]')).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#log .line")).to_have_count(3)
    assert [text[-6:] for text in page.locator("#log .line").all_inner_texts()] == [
        "tick 0",
        "tick 1",
        "tick 2",
    ]
    assert dropped, "the test dropped nothing: the lines did not arrive as events"
    state = page.evaluate("window.Lambdasite.state")
    assert state["mode"] == "live" and state["gaps"] >= 1 and state["polls"] == 0
    assert_not_reloaded(page)


def test_a_running_jobs_page_ticks_and_announces_how_it_ended(browser, server, alice):
    """The run console: while the job runs its clock ticks (on the server's time), the log pane is
    tall, and when it ends a polite live region says how, without a reload."""
    job_id = submit(server, alice, {"runtime": "python", "code": TICKER, "args": [4]})
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.goto(f"{server}/app/jobs/{job_id}/")
    mark_page(page)
    badge = page.locator(f'.summary [data-job-status="{job_id}"]')
    elapsed = page.locator("#job-elapsed")
    expect(badge).to_have_text("running", timeout=30_000)
    expect(elapsed).to_have_text(re.compile(r"^running \d+\.\d s$"))
    before = elapsed.inner_text()
    page.wait_for_function(  # it ticks on its own: no event comes between two lines of the log
        "t => document.getElementById('job-elapsed').textContent !== t", arg=before, timeout=2_000
    )
    expect(page.locator("#log-card")).to_have_class(re.compile(r"\brunning\b"))
    expect(page.locator("#job-announce")).to_have_text("")  # nothing said while nothing changed
    expect(page.locator(".run-progress li.current")).to_contain_text("Finished")
    shot(page, "job-console-running")
    expect(badge).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#job-announce")).to_have_text(re.compile(r"^Job succeeded in \d+(\.\d+)? s$"))
    assert page.locator("#job-announce").get_attribute("aria-live") == "polite"
    expect(elapsed).to_have_text(re.compile(r"^ran \d+\.\d\d s$"))
    expect(page.locator("#log-card")).not_to_have_class(re.compile(r"\brunning\b"))
    expect(page.locator("main")).to_contain_text("inline · python · import time")
    expect(page.locator(".strip-trigger")).to_contain_text("API key acme key")
    page.click("#job-details-box > summary")
    expect(page.locator("#job-details")).to_contain_text("Retries")
    assert_not_reloaded(page)
    shot(page, "job-console")


def test_the_jobs_list_says_politely_what_new_job_appeared(browser, server, alice):
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.goto(server + "/app/jobs/")
    expect(page.locator("html[data-live=live]")).to_have_count(1, timeout=10_000)
    code = "\n# doubles\ndef main(i):\n    return 2 * i\n"
    job_id = submit(server, alice, {"runtime": "python", "code": code, "args": [2]})
    expect(page.locator(f'tr[data-job="{job_id}"] td[data-label="What"]')).to_have_text(
        "inline · python · # doubles", timeout=10_000
    )
    expect(page.locator("#jobs-announce")).to_have_text("New job: inline · python · # doubles")
    assert page.locator("#jobs-announce").get_attribute("aria-live") == "polite"


def test_a_functions_page_shows_its_new_runs_and_versions_live(browser, server, alice):
    from functions.services import deploy

    shout, _ = deploy.function_create(
        tenant=alice.tenant, user=alice.user, name="shout", runtime="python",
        spec=deploy.VersionSpec(code="def main(word):\n    return word.upper()\n"),
    )  # fmt: skip
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.goto(server + "/app/functions/shout/")
    expect(page.locator("html[data-live=live]")).to_have_count(1, timeout=10_000)
    mark_page(page)
    # a job of the function, from the API: it appears and finishes on the page
    _, answer = post_json(server + "/api/v1/functions/shout/invoke", alice.key, {"args": ["hi"]}, timeout=10)
    row = page.locator(f'#function-jobs tr[data-job="{answer["id"]}"]')
    expect(row.locator(f'[data-job-status="{answer["id"]}"]')).to_have_text("succeeded", timeout=30_000)
    expect(row.locator('td[data-label="What"]')).to_have_text("shout@v1")
    expect(row.locator('td[data-label="Trigger"]')).to_have_text("API key acme key")
    # a new version that needs a build: it shows up building, then ready
    deploy.version_create(
        function=shout,
        user=alice.user,
        spec=deploy.VersionSpec(code="import six\n\ndef main(word):\n    return six.ensure_text(word)\n",
                                requirements="six==1.16.0"),
    )  # fmt: skip
    versions = page.locator("#function-versions")
    expect(versions).to_contain_text("v2", timeout=10_000)
    expect(versions.locator("tr", has_text="v2").locator(".badge")).to_have_text("ready", timeout=90_000)
    assert_not_reloaded(page)
    shot(page, "function-detail-live")


def test_deploy_a_function_with_a_dependency_watch_its_build_then_alias_invoke_and_diff(
    browser, server, alice
):
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.click("nav >> text=Functions")
    expect(page.locator("h1")).to_have_text("Functions")
    page.click("text=Deploy your first function")
    page.fill("input[name=name]", "shout")
    code = "import six\n\ndef main(word):\n    return six.ensure_text(word).upper()\n"
    page.wait_for_function("() => !!window.LambdasiteEditor")  # the editor's script has run
    page.evaluate("code => window.LambdasiteEditor.setValue(code)", code)
    page.fill("#requirements", "six==1.16.0")
    shot(page, "function-deploy")
    page.click("#run")
    # the version page: the build log streams in over the websocket, then the badge turns ready
    expect(page).to_have_url(re.compile(r"/app/functions/shout/versions/1/$"))
    mark_page(page)
    expect(page.locator("#log .line").first).to_be_visible(timeout=30_000)
    expect(page.locator("#version-status")).to_have_text("ready", timeout=90_000)
    expect(page.locator("#log")).to_contain_text("resolved 1 package")
    assert_not_reloaded(page)
    assert page.evaluate("window.Lambdasite.state")["mode"] == "live"
    shot(page, "function-version")

    page.click("h1 >> text=shout")
    page.fill("input[name=alias]", "prod")
    page.click("text=Set alias")
    expect(page.locator(".msg")).to_contain_text("Alias prod now points to version 1")
    page.select_option("select[name=qualifier]", "prod")
    page.fill("#invoke-args", '["hello"]')
    page.click("button >> text=Invoke")
    expect(page).to_have_url(re.compile(r"/app/jobs/[0-9a-f-]{36}/$"))
    expect(page.locator("#job-result")).to_have_text('"HELLO"', timeout=30_000)
    expect(page.locator("main")).to_contain_text("via alias prod")

    page.goto(server + "/app/functions/shout/deploy")
    page.wait_for_function("() => !!window.LambdasiteEditor")
    page.evaluate(
        "window.LambdasiteEditor.setValue(window.LambdasiteEditor.getValue().replace('upper', 'lower'))"
    )
    page.click("#run")
    expect(page).to_have_url(re.compile(r"/app/functions/shout/versions/2/$"))
    expect(page.locator("#version-status")).to_have_text("ready", timeout=90_000)
    page.goto(server + "/app/functions/shout/")
    page.click("text=diff with v1")
    expect(page.locator("pre.diff .del")).to_contain_text("upper()")
    expect(page.locator("pre.diff .add")).to_contain_text("lower()")
    shot(page, "function-detail")


def test_a_schedule_form_previews_its_next_runs_live(browser, server, alice):
    from functions.services import deploy

    deploy.function_create(
        tenant=alice.tenant, user=None, name="adder", runtime="python",
        spec=deploy.VersionSpec(code="def main(a, b):\n    return a + b\n"),
    )  # fmt: skip
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.click("nav >> text=Schedules")
    page.click("text=Create a schedule")
    # the new form's default expression is previewed at once, before anything is typed
    expect(page.locator("#preview li")).to_have_count(5)
    page.fill("input[name=name]", "weekly")
    page.fill("#tz", "Asia/Tokyo")  # in the schedule's zone, not the browser's: 09:00 JST is 00:00Z
    page.fill("#cron", "0 9 * * 1")
    expect(page.locator("#preview li").first).to_contain_text("09:00 JST")
    assert all(
        " 09:00 JST (" in t and "T00:00:00Z" in t for t in page.locator("#preview li").all_inner_texts()
    )
    page.fill("#tz", "UTC")
    expect(page.locator("#preview li").first).to_contain_text("09:00 UTC")
    assert all("T09:00:00Z" in text for text in page.locator("#preview li").all_inner_texts())
    page.fill("#cron", "0 99 * * *")
    expect(page.locator("#preview-error")).to_contain_text("Cron: ")
    page.fill("#cron", "15 8 * * *")
    expect(page.locator("#preview li").first).to_contain_text("T08:15:00Z")
    shot(page, "schedule-new")
    page.click("button >> text=Create")
    expect(page).to_have_url(server + "/app/schedules/weekly/")
    page.click("button >> text=Run now")
    expect(page.locator("main")).to_contain_text("(by hand)")


def test_the_overview_charts_read_in_the_readers_zone(browser, server, alice):
    """The server writes chart times in UTC, saying so; the page says them in the browser's zone, as
    it does every other time: Tokyo is UTC+9 all year."""
    from datetime import datetime, timedelta, timezone

    page = sign_in(browser, server, "alice@acme.test", "pw-acme", timezone_id="Asia/Tokyo")
    axis = page.locator("svg.chart text[data-time]")
    expect(axis.first).to_have_attribute("data-local", "1")
    tokyo = timezone(timedelta(hours=9))
    labels = axis.evaluate_all("els => els.map(e => [e.getAttribute('data-time'), e.textContent])")
    assert len(labels) == 6  # start, middle and end of both charts
    for instant, text in labels:
        when = datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(tokyo)
        assert text == f"{when:%H:%M}", (instant, text)  # Tokyo's hours, no "UTC"
    hover = page.locator("svg.chart title[data-time]").first.evaluate(
        "e => [e.getAttribute('data-time'), e.textContent]"
    )
    when = datetime.fromisoformat(hover[0].replace("Z", "+00:00")).astimezone(tokyo)
    assert hover[1].startswith(f"{when:%H:%M}: ") and "UTC" not in hover[1]
    shot(page, "overview-tokyo")


def test_the_schedule_form_says_its_expression_in_words_as_you_type(browser, server, alice):
    page = sign_in(browser, server, "alice@acme.test", "pw-acme")
    page.goto(server + "/app/schedules/new")
    words = page.locator("#cron-words")
    expect(words).to_have_text("Every hour (UTC)")  # rendered with the page
    page.fill("#cron", "*/5 * * * *")
    expect(words).to_have_text("Every 5 minutes (UTC)")
    page.fill("#tz", "Europe/Berlin")
    page.fill("#cron", "0 9 * * 1-5")
    expect(words).to_have_text("At 09:00 on Monday to Friday (Europe/Berlin)")
    expect(page.locator("#preview li").first).to_contain_text("09:00 CE")
    page.fill("#cron", "0 9 * * 1-")
    expect(page.locator("#preview-error")).to_contain_text("Cron: ")
    expect(words).to_have_text("")
