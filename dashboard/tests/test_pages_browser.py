"""Every dashboard page in Chromium at a phone's, a tablet's and a desktop's width, in light and dark:
nothing wider than the screen, no action button cut off, and no serious or critical axe-core violation.

The data is real (jobs run in Docker by an RQ worker in this process, the rest made through the
services and the ORM) and the pages are served by uvicorn. Screenshots of every page at 390 and 1440
px in both themes go to var/screenshots/, and axe-core's findings, all impacts, to
var/axe-summary.txt. axe-core is vendored under dashboard/tests/vendor/ (see its README)."""

from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Membership
from accounts.services import (
    api_key_issue,
    api_key_revoke,
    invitation_create,
    membership_set,
    user_get_or_create,
)
from dashboard.tests.test_browser import browser, sign_in  # noqa: F401 (browser: the fixture)
from functions.models import BuildLogLine, BuildStatus, FunctionVersion
from functions.services import aliases, deploy
from functions.tests.support import make_adder
from jobs.models import Job, Status
from jobs.tests.live_server import post_json
from jobs.tests.test_chaos import Stack
from routes.services import manage as route_manage
from schedules.services import manage as schedule_manage
from schedules.services import ticks
from vault.services import Actor, secret_put
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
AXE_SUMMARY = ROOT / "var" / "axe-summary.txt"
LAYOUT_SUMMARY = ROOT / "var" / "layout-problems.txt"
WIDTHS = {390: 844, 768: 1024, 1440: 900}
AXE_WIDTHS = (390, 1440)  # axe runs in both themes at these; the layout is checked at every width
SHOT_WIDTHS = (390, 1440)
FAILING = {"serious", "critical"}

# The document's width, and every visible action cut off by the viewport or by an ancestor that
# clips (overflow other than visible): one string per problem.
LAYOUT_JS = r"""() => {
  const problems = [];
  const vw = window.innerWidth, doc = document.documentElement;
  if (doc.scrollWidth > vw) problems.push(`the document is ${doc.scrollWidth}px wide`);
  const name = el => (el.textContent || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 30);
  for (const el of document.querySelectorAll('button, a.button, input[type=submit]')) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
    if (r.left < -0.5 || r.right > vw + 0.5) {
      problems.push(`"${name(el)}" is outside the viewport (${Math.round(r.left)}..${Math.round(r.right)})`);
      continue;
    }
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
      const c = p.getBoundingClientRect();
      const out = r.left < c.left - 0.5 || r.right > c.right + 0.5 || r.top < c.top - 0.5
        || r.bottom > c.bottom + 0.5;
      if (out) {
        const classes = p.className ? '.' + String(p.className).trim().split(/\s+/).join('.') : '';
        const where = p.tagName.toLowerCase() + classes;
        problems.push(`"${name(el)}" is cut off by ${where}`);
        break;
      }
    }
  }
  return problems;
}"""

AXE_JS = """async () => {
  // target-size (WCAG 2.2's 24 px for touch targets) is off by default in axe-core: on here
  const rules = {'target-size': {enabled: true}};
  const results = await axe.run(document, {resultTypes: ['violations'], rules});
  return results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({impact: n.impact, target: n.target.join(' ')})),
  }));
}"""


@dataclass
class Site:
    """What the fixture made: ids for the pages' paths and the links shown once."""

    ok_job: str = ""
    failed_job: str = ""
    endpoint: str = ""
    route: str = ""
    route_job: str = ""
    invite_token: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class PageSpec:
    name: str
    path: str
    anonymous: bool = False
    before: Callable | None = None  # does what the page shows after a form (a secret shown once)


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    axe_rows: list[tuple[str, int, str, list]] = field(default_factory=list)


@pytest.fixture
def web(alice, bob):
    """uvicorn and a worker on the test database (no builder, scheduler or reconciler)."""
    stack = Stack(settings.REDIS_URL)
    stack.start("worker", "worker")
    yield stack.start_web()
    stack.stop()


def submit(server: str, persona, path: str, body: dict) -> str:
    """POST to the live server's API with the persona's key -> the job's id. (Playwright's event
    loop runs on this thread, so Django's test client cannot be used here.)"""
    return post_json(server + path, persona.key, body, timeout=10)[1]["id"]


def wait_until_finished(job_ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    unfinished = {Status.QUEUED, Status.DISPATCHED, Status.RUNNING}
    while Job.objects.filter(pk__in=job_ids, status__in=unfinished).exists():
        assert time.monotonic() < deadline, "the site's jobs did not finish"
        time.sleep(0.2)


@pytest.fixture
def site(web, alice, bob) -> Site:
    made = Site()
    adder = make_adder(alice.tenant)
    deploy.version_create(
        function=adder,
        user=alice.user,
        spec=deploy.VersionSpec(code="def main(a, b):\n    return a + b + 0\n"),
    )
    aliases.alias_set(function=adder, name="prod", version=2, additional_version=1, weight=0.1)
    deploy.function_create(
        tenant=alice.tenant, user=alice.user, name="greet", runtime="node",
        spec=deploy.VersionSpec(code="exports.main = (name) => `hello ${name}`;\n"),
    )  # fmt: skip
    made.ok_job = submit(
        web,
        alice,
        "/api/v1/jobs",
        {
            "runtime": "python",
            "code": "def main(n):\n    for i in range(n):\n        print(f'step {i}: loading the "
            "customer export and checking every row', flush=True)\n    return {'rows': n * 1000, "
            "'status': 'ok'}\n",
            "args": [4],
        },
    )
    made.failed_job = submit(
        web,
        alice,
        "/api/v1/jobs",
        {
            "runtime": "python",
            "code": "def main():\n    print('connecting')\n    raise ValueError('the export is empty')\n",
            "max_retries": 0,
        },
    )
    dead = submit(
        web,
        alice,
        "/api/v1/jobs",
        {"runtime": "python", "code": "def main():\n    raise KeyError('customer_id')\n", "max_retries": 1},
    )
    node = submit(web, alice, "/api/v1/jobs", {"runtime": "node", "code": "exports.main = () => 42;\n"})
    invoked = submit(web, alice, "/api/v1/functions/adder/invoke?qualifier=prod", {"args": [2, 3]})
    made.route_job, made.route = _routed(web, alice)
    nightly = schedule_manage.schedule_create(
        tenant=alice.tenant,
        name="nightly-report",
        spec=schedule_manage.ScheduleSpec(
            cron="30 2 * * *", timezone="Europe/Berlin", function="adder", qualifier="prod", args=[1, 2]
        ),
    )
    fired = ticks.schedule_run_now(schedule=nightly).job_id
    # a durable run: a step, a map over the adder, then a long sleep (waiting, its timeline drawn)
    made.extra["durable"] = submit(
        web,
        alice,
        "/api/v1/jobs",
        {
            "runtime": "python",
            "durable": True,
            "code": "def main(ctx):\n    rows = ctx.step('load-the-customer-export', lambda: 3)\n"
            "    sums = ctx.map('add-every-pair', 'adder', [[i, i] for i in range(rows)])\n"
            "    ctx.sleep('cool-down-before-the-next-batch', 3600)\n    return sums\n",
        },
    )
    wait_until_finished([made.ok_job, made.failed_job, node, invoked, str(fired)])
    deadline = time.monotonic() + 60
    while Job.objects.get(pk=made.extra["durable"]).status != Status.WAITING:
        assert time.monotonic() < deadline, "the durable run did not reach its sleep"
        time.sleep(0.2)
    wait_until_finished([dead], timeout=30)  # its first attempt failed: retrying, not yet dead
    Job.objects.filter(pk=dead).update(status=Status.DEAD, finished_at=timezone.now())  # no backoff wait
    _pause_a_schedule(alice)
    _failed_build(alice)
    made.extra["child"] = str(Job.objects.filter(parent_id=made.extra["durable"]).first().id)
    made.endpoint = _webhooks(alice, made.ok_job, made.failed_job)
    _people(alice, bob)
    made.invite_token = invitation_create(
        tenant=alice.tenant, email="erin@example.com", role="viewer", invited_by=alice.user
    ).token
    return made


def _routed(web: str, alice) -> tuple[str, str]:
    """A function answering a public route, called once over HTTP -> (its job's id, the route's id)."""
    hello, _ = deploy.function_create(
        tenant=alice.tenant, user=alice.user, name="hello", runtime="python",
        spec=deploy.VersionSpec(
            code="def main(request):\n    name = request['params']['name']\n    return {'status': 201, "
            "'headers': {'content-type': 'text/plain'}, 'body': f'hello {name}'}\n"
        ),
    )  # fmt: skip
    route = route_manage.route_create(
        function=hello,
        spec=route_manage.RouteSpec(
            path="/hello/{name}", methods=["GET", "POST"], cors=["https://shop.example.com"],
            rate_limit_per_minute=600, description="greets whoever the path names",
        ),
    )  # fmt: skip
    with urllib.request.urlopen(f"{web}/fn/{alice.tenant.slug}/hello/world?lang=en", timeout=30) as answer:
        assert answer.status == 201 and answer.read() == b"hello world"
    return str(Job.objects.get(route=route).pk), str(route.pk)


def _pause_a_schedule(alice) -> None:
    hourly = schedule_manage.schedule_create(
        tenant=alice.tenant,
        name="hourly-sync",
        spec=schedule_manage.ScheduleSpec(cron="0 * * * *", function="greet", args=["world"]),
    )
    with transaction.atomic():
        ticks.pause(
            hourly, "paused after 5 failed runs in a row: the last said ValueError: the export is empty"
        )
        hourly.save()


def _failed_build(alice) -> None:
    """A version whose dependencies did not install, with its build log (no builder runs here)."""
    shout, _ = deploy.function_create(
        tenant=alice.tenant, user=alice.user, name="shout", runtime="python",
        spec=deploy.VersionSpec(code="import six\n\ndef main(word):\n    return word.upper()\n",
                                requirements="six==1.16.0\nrequests==2.32.3"),
    )  # fmt: skip
    version = FunctionVersion.objects.get(function=shout, number=1)
    now = timezone.now()
    lines = [
        "[lambdasite] resolving 2 requirements for python",
        "Collecting six==1.16.0",
        "  Downloading six-1.16.0-py2.py3-none-any.whl (11 kB)",
        "ERROR: Could not find a version that satisfies the requirement requests==2.32.3",
        "ERROR: No matching distribution found for requests==2.32.3",
    ]
    BuildLogLine.objects.bulk_create(
        BuildLogLine(version=version, seq=i, stream="build", ts=now, text=text)
        for i, text in enumerate(lines, 1)
    )
    FunctionVersion.objects.filter(pk=version.pk).update(
        status=BuildStatus.FAILED,
        build_attempts=1,
        build_log_lines=len(lines),
        build_error="pip could not install the requirements: no matching distribution for requests==2.32.3",
    )


def _webhooks(alice, ok_job: str, failed_job: str) -> str:
    endpoint = WebhookEndpoint.objects.create(
        tenant=alice.tenant,
        url="https://hooks.example.com/lambdasite/acme/production/job-events/receiver?source=lambdasite&team=billing",
        events=["job.succeeded", "job.failed", "job.dead"],
        description="billing team's receiver",
        secret="whsec_" + "x" * 32,
        failing_since=timezone.now() - timedelta(minutes=20),
    )
    WebhookEndpoint.objects.create(
        tenant=alice.tenant,
        url="https://example.org/hook",
        events=["schedule.paused"],
        secret="whsec_" + "y" * 32,
        enabled=False,
        disabled_reason="disabled after 5 days of failed deliveries",
    )
    now = timezone.now()
    for n, (job_id, kind, status, answers) in enumerate(
        [
            (ok_job, "job.succeeded", Delivery.Status.SUCCEEDED, [(200, 84.2, "")]),
            (
                failed_job,
                "job.failed",
                Delivery.Status.FAILED,
                [
                    (None, 3001.0, "[Errno 111] Connection refused"),
                    (503, 120.5, ""),
                    (None, 10000.0, "timed out"),
                ],
            ),
            (failed_job, "job.failed", Delivery.Status.PENDING, [(500, 95.0, "")]),
        ]
    ):
        event = Event.objects.create(tenant=alice.tenant, type=kind, job_id=job_id, body="{}")
        delivery = Delivery.objects.create(
            tenant=alice.tenant,
            endpoint=endpoint,
            url=endpoint.url,
            webhook_id=f"msg_2p{n}Q8vKcL0x4mT7sWbN1rYdE3fG",
            type=kind,
            job_id=job_id,
            event=event,
            status=status,
            attempts=len(answers),
            next_attempt_at=now + timedelta(minutes=5) if status == Delivery.Status.PENDING else None,
        )
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                delivery=delivery, number=i, started_at=now, status_code=code, latency_ms=ms, error=error
            )
            for i, (code, ms, error) in enumerate(answers, 1)
        )
    return str(endpoint.id)


def _people(alice, bob) -> None:
    for email, role in [
        ("carol.long-surname@acme.test", Membership.Role.MEMBER),
        ("dave@acme.test", "viewer"),
    ]:
        membership_set(tenant=alice.tenant, user=user_get_or_create(email=email, password="pw"), role=role)
    api_key_issue(
        tenant=alice.tenant, name="billing-service (read only)", scope="read", created_by=alice.user
    )
    old = api_key_issue(tenant=alice.tenant, name="old laptop", created_by=alice.user).api_key
    api_key_revoke(api_key=old)
    invitation_create(tenant=bob.tenant, email="alice@acme.test", role="member", invited_by=bob.user)
    owner = Actor(label=alice.user.email, is_owner=True, user=alice.user)
    for name in ("STRIPE_API_KEY", "slack-webhook-url-for-the-billing-team-notifications"):
        secret_put(tenant=alice.tenant, name=name, value="sk_test_" + "z" * 24, actor=owner)
    secret_put(tenant=alice.tenant, name="STRIPE_API_KEY", value="sk_test_rotated", actor=owner)


def _create_key(page, server: str) -> None:
    page.goto(server + "/app/keys/")
    page.fill("input[name=name]", "deploy-bot")
    page.click("button >> text=Create key")
    expect(page.locator("#new-key")).to_be_visible()


def _invite(page, server: str) -> None:
    page.goto(server + "/app/members/")
    page.fill("input[name=email]", f"frank-{time.monotonic_ns()}@example.com")
    page.click("button >> text=Invite")
    expect(page.locator("#invite-url")).to_be_visible()


def pages(made: Site) -> list[PageSpec]:
    def rotate(page, server):
        page.goto(f"{server}/app/webhooks/{made.endpoint}/")
        page.click("button >> text=Rotate secret")  # its confirm() is accepted by sign_in's handler
        expect(page.locator("#new-secret")).to_be_visible()

    return [
        PageSpec("overview", "/app/"),
        PageSpec("jobs", "/app/jobs/"),
        PageSpec("job-succeeded", f"/app/jobs/{made.ok_job}/"),
        PageSpec("job-failed", f"/app/jobs/{made.failed_job}/"),
        PageSpec("job-durable", f"/app/jobs/{made.extra['durable']}/"),
        PageSpec("job-durable-child", f"/app/jobs/{made.extra['child']}/"),
        PageSpec("job-new", "/app/jobs/new"),
        PageSpec("functions", "/app/functions/"),
        PageSpec("function", "/app/functions/adder/?version=2&compare=1"),
        PageSpec("version", "/app/functions/adder/versions/2/"),
        PageSpec("version-failed-build", "/app/functions/shout/versions/1/"),
        PageSpec("function-new", "/app/functions/new"),
        PageSpec("route-new", "/app/functions/hello/routes/new"),
        PageSpec("route-edit", f"/app/functions/hello/routes/{made.route}/"),
        PageSpec("job-of-a-route", f"/app/jobs/{made.route_job}/"),
        PageSpec("function-with-a-route", "/app/functions/hello/"),
        PageSpec("function-deploy", "/app/functions/adder/deploy"),
        PageSpec("schedules", "/app/schedules/"),
        PageSpec("schedule", "/app/schedules/nightly-report/"),
        PageSpec("schedule-new", "/app/schedules/new"),
        PageSpec("webhooks", "/app/webhooks/"),
        PageSpec("webhook", f"/app/webhooks/{made.endpoint}/"),
        PageSpec("webhook-new-secret", "", before=rotate),
        PageSpec("api-keys", "/app/keys/"),
        PageSpec("api-keys-new-key", "", before=_create_key),
        PageSpec("members", "/app/members/"),
        PageSpec("members-new-link", "", before=_invite),
        PageSpec("invitations", "/app/invitations/"),
        PageSpec("secrets", "/app/secrets/"),
        PageSpec("dead-letters", "/app/dead-letters/"),
        PageSpec("password", "/password/"),
        PageSpec("not-found", "/app/no-such-page/"),
        PageSpec("home", "/", anonymous=True),
        PageSpec("sign-in", "/login/", anonymous=True),
        PageSpec("invitation-link", f"/app/invite/{made.invite_token}/", anonymous=True),
    ]


def visit(page, server: str, spec: PageSpec) -> None:
    if spec.before:
        spec.before(page, server)
    else:
        page.goto(server + spec.path)
    page.wait_for_load_state("load")


def check(page, spec: PageSpec, width: int, found: Findings) -> None:
    """The layout at this width, then (at the axe widths) axe-core and a screenshot in each theme."""
    found.problems += [f"{spec.name} at {width}px: {p}" for p in page.evaluate(LAYOUT_JS)]
    if width not in AXE_WIDTHS and width not in SHOT_WIDTHS:
        return
    page.add_script_tag(path=str(AXE))
    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        if width in AXE_WIDTHS:
            violations = run_axe(page, f"{spec.name} at {width}px, {theme}", found)
            found.axe_rows.append((spec.name, width, theme, violations))
        if width in SHOT_WIDTHS:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{spec.name}-{width}-{theme}.png"), full_page=True)
    page.emulate_media(color_scheme="light")


def run_axe(page, where: str, found: Findings) -> list[dict]:
    """axe-core on the page as it is: every violation is returned; serious and critical ones fail."""
    violations = page.evaluate(AXE_JS)
    for v in violations:
        for node in v["nodes"]:
            impact = node["impact"] or v["impact"]
            if impact in FAILING:
                found.problems.append(f"{where}: axe {v['id']} ({impact}) {node['target']}: {v['help']}")
    return violations


def write_axe_summary(rows: list) -> None:
    """Per page, width and theme: violations (nodes) by impact and rule, then the totals."""
    impacts = ["critical", "serious", "moderate", "minor"]
    widths = ", ".join(map(str, AXE_WIDTHS))
    lines = [f"axe-core violations, all impacts, counted per node, at {widths} px (target-size on)", ""]
    totals, rules = Counter(), Counter()
    for name, width, theme, violations in rows:
        counts, by_rule = Counter(), Counter()
        for v in violations:
            for node in v["nodes"]:
                impact = node["impact"] or v["impact"]
                counts[impact] += 1
                by_rule[f"{v['id']} ({impact})"] += 1
        totals.update(counts)
        rules.update(by_rule)
        head = " ".join(f"{i}={counts[i]}" for i in impacts)
        detail = ", ".join(f"{rule} x{n}" for rule, n in sorted(by_rule.items()))
        lines.append(f"{name:22} {width:5} {theme:5}  {head}  {detail}")
    lines += ["", "total: " + " ".join(f"{i}={totals[i]}" for i in impacts), "by rule:"]
    lines += [f"  {rule}: {n}" for rule, n in rules.most_common()]
    AXE_SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    AXE_SUMMARY.write_text("\n".join(lines) + "\n")


def test_every_page_fits_every_width_and_passes_axe_in_both_themes(browser, web, site, alice):  # noqa: F811
    found = Findings()
    specs = pages(site)
    for width, height in WIDTHS.items():
        viewport = {"width": width, "height": height}
        signed_in = sign_in(browser, web, "alice@acme.test", "pw-acme", viewport=viewport)
        anonymous = browser.new_context(viewport=viewport).new_page()
        for spec in specs:
            page = anonymous if spec.anonymous else signed_in
            visit(page, web, spec)
            check(page, spec, width, found)
        signed_in.context.close()
        anonymous.context.close()
    write_axe_summary(found.axe_rows)
    layout = [p for p in found.problems if ": axe " not in p]
    LAYOUT_SUMMARY.write_text("".join(f"{p}\n" for p in layout) or "none\n")
    assert not found.problems, "\n".join(found.problems)


@pytest.fixture
def bare_web(alice):
    """uvicorn alone: the header and the theme need no jobs."""
    stack = Stack(settings.REDIS_URL)
    yield stack.start_web()
    stack.stop()


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two computed colours ("rgb(r, g, b)")."""

    def luminance(css: str) -> float:
        channels = [int(x) / 255 for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted([luminance(a), luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_phone_header_is_one_row_with_a_menu_and_works_without_javascript(browser, bare_web):  # noqa: F811
    phone = {"width": 390, "height": 844}
    page = sign_in(browser, bare_web, "alice@acme.test", "pw-acme", viewport=phone)
    assert page.locator("header.top").bounding_box()["height"] <= 60
    menu = page.locator("[data-menu-toggle]")
    expect(page.locator("nav >> text=Schedules")).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")  # closes it again, focus back on the button
    expect(page.locator("nav >> text=Schedules")).to_be_hidden()
    assert page.evaluate("document.activeElement.hasAttribute('data-menu-toggle')")
    menu.click()
    page.click("nav >> text=Schedules")
    expect(page.locator("h1")).to_have_text("Schedules")
    assert page.locator("header.top").bounding_box()["height"] <= 60  # closed again on the next page

    wide = {"width": 1440, "height": 900}
    desktop = sign_in(browser, bare_web, "alice@acme.test", "pw-acme", viewport=wide)
    expect(desktop.locator("[data-menu-toggle]")).to_be_hidden()
    assert desktop.locator("header.top").bounding_box()["height"] <= 60  # one row at 1440

    anonymous = browser.new_context(viewport=phone).new_page()
    anonymous.goto(bare_web + "/")
    expect(anonymous.locator("header >> text=Sign in")).to_be_visible()  # no menu to open: all shown
    expect(anonymous.locator("[data-theme-toggle]")).to_be_visible()
    assert anonymous.locator("header.top").bounding_box()["height"] <= 60

    no_js = browser.new_context(viewport=phone, java_script_enabled=False).new_page()
    no_js.goto(bare_web + "/login/")
    no_js.fill("#id_username", "alice@acme.test")
    no_js.fill("#id_password", "pw-acme")
    no_js.click("button[type=submit]")
    expect(no_js.locator("nav >> text=Schedules")).to_be_visible()  # the menu simply stays open
    expect(no_js.locator("[data-menu-toggle]")).to_be_hidden()
    assert no_js.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_theme_toggle_remembers_the_choice_and_applies_it_before_the_first_paint(browser, bare_web):  # noqa: F811
    page = sign_in(browser, bare_web, "alice@acme.test", "pw-acme", viewport={"width": 1440, "height": 900})
    toggle = page.locator("[data-theme-toggle]")
    expect(toggle).to_have_text(re.compile("Theme: system"))
    light_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    toggle.click()
    expect(toggle).to_have_text(re.compile("Theme: light"))
    toggle.click()
    expect(toggle).to_have_text(re.compile("Theme: dark"))
    dark_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert contrast(light_bg, dark_bg) > 10
    # on the next page the attribute is there when <body> is created: before anything is painted
    page.add_init_script(
        "new MutationObserver((_, observer) => { if (document.body) { window.__themeAtBody ="
        " document.documentElement.dataset.theme; observer.disconnect(); } })"
        ".observe(document, {childList: true, subtree: true});"
    )
    page.goto(bare_web + "/app/jobs/")
    assert page.evaluate("window.__themeAtBody") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == dark_bg
    toggle.click()  # back to the system's choice, which this browser says is light
    expect(toggle).to_have_text(re.compile("Theme: system"))
    assert page.evaluate("localStorage.getItem('lambdasite-theme')") is None
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == light_bg


FOCUS_JS = """() => {
  const el = document.activeElement, s = getComputedStyle(el);
  let bg = 'rgba(0, 0, 0, 0)';
  for (let p = el.parentElement; p && bg.startsWith('rgba(0, 0, 0, 0)'); p = p.parentElement) {
    bg = getComputedStyle(p).backgroundColor;
  }
  return {outline: s.outlineColor, width: s.outlineWidth, style: s.outlineStyle, border: s.borderTopColor,
          bg};
}"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_focus_rings_and_field_borders_stand_out_in_both_themes(browser, bare_web, theme):  # noqa: F811
    page = sign_in(browser, bare_web, "alice@acme.test", "pw-acme", color_scheme=theme)
    page.goto(bare_web + "/app/keys/")
    page.focus("input[name=name]")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # focused from the keyboard, so :focus-visible applies
    field = page.evaluate(FOCUS_JS)
    assert field["style"] == "solid" and field["width"] == "3px"
    assert contrast(field["outline"], field["bg"]) >= 3, field
    assert contrast(field["border"], field["bg"]) >= 3, field
    page.goto(bare_web + "/app/jobs/new")
    page.click(".CodeMirror")
    editor = page.evaluate(
        "(() => { const s = getComputedStyle(document.querySelector('.CodeMirror-focused'));"
        " return {color: s.outlineColor, width: s.outlineWidth}; })()"
    )
    body = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert editor["width"] == "3px" and contrast(editor["color"], body) >= 3, editor
    # the textarea that has focus in the editor is named after the field's label
    label = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert label.startswith("Code (code editor")


def test_a_row_links_as_a_whole_and_its_buttons_still_act(browser, bare_web, alice):  # noqa: F811
    make_adder(alice.tenant)
    schedule_manage.schedule_create(
        tenant=alice.tenant,
        name="nightly",
        spec=schedule_manage.ScheduleSpec(cron="30 2 * * *", function="adder", args=[1, 2]),
    )
    for width in (1440, 390):  # a table row, then a stacked card
        viewport = {"width": width, "height": 900}
        page = sign_in(browser, bare_web, "alice@acme.test", "pw-acme", viewport=viewport)
        page.goto(bare_web + "/app/schedules/")
        # a click on a cell that holds no link lands on the row's link, stretched over the row
        # (Playwright sees it covered, as it should be: force clicks the cell's middle anyway; a forced
        # click does not wait for the cell to be laid out, so the test does: under load it once was not)
        expect(page.locator("td[data-label=When]")).to_be_visible()
        page.click("td[data-label=When]", force=True)
        expect(page).to_have_url(bare_web + "/app/schedules/nightly/")
        page.go_back()
        page.click("td.actions-cell >> text=Pause")  # above the row's link: the button acts
        expect(page).to_have_url(bare_web + "/app/schedules/")
        expect(page.locator("td[data-label=State]")).to_contain_text("paused")
        page.click("td.actions-cell >> text=Resume")
        expect(page.locator("td[data-label=State]")).to_contain_text("active")
        page.context.close()
