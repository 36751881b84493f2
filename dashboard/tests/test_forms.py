"""Every dashboard form, given bad values, says what is wrong beside the field, in the words of the
field's visible label, and no API field name (``timeout_ms``) reaches the page's text."""

from __future__ import annotations

import html
import re

import pytest

from dashboard.forms import beside, in_words
from functions.tests.support import make_adder
from schedules.models import Schedule
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint

from .pages import ADD, signed_in

pytestmark = pytest.mark.django_db

API_NAMES = ("timeout_ms", "memory_mb", "max_retries", "catch_up", "max_failures", "additional_version",
             "run_at", "delay_s", "callback_url", "cron:", "url:", "events:", "email:", "weight:",
             "[Errno")  # fmt: skip
JOB = {
    "runtime": "python",
    "handler": "main",
    "code": ADD["code"],
    "args": "[2, 3]",
    "timeout_ms": "5000",
    "memory_mb": "128",
    "max_retries": "1",
}
SCHEDULE = {
    "name": "nightly",
    "function": "adder",
    "qualifier": "",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "args": "[1, 2]",
    "overlap": "skip",
    "catch_up": "none",
    "max_failures": "3",
    "description": "",
}


@pytest.fixture
def web(alice):
    return signed_in(alice.user)


@pytest.fixture
def adder(alice):
    return make_adder(alice.tenant)


def visible(page: str) -> str:
    """The page's text as a person reads it: no scripts, styles, tags or attributes."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def error_beside(page: str, name: str) -> str:
    """The error shown beside the field ``name``, which names it with aria-describedby."""
    found = re.search(rf'<p class="field-error" id="{name}-error" role="alert"[^>]*>([^<]*)</p>', page)
    assert found, f"no error beside {name}"
    assert re.search(rf'name="{name}"[^>]*aria-describedby="[^"]*{name}-error', page), name
    return html.unescape(found.group(1))


def assert_no_api_names(page: str) -> None:
    text = visible(page)
    for name in API_NAMES:
        assert name not in text, name


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        ({"timeout_ms": "50"}, "timeout_ms", "Timeout (ms) must be at least 100."),
        ({"memory_mb": "4096"}, "memory_mb", "Memory (MB): 4096 is over this tenant's cap of 512."),
        ({"max_retries": "many"}, "max_retries", "Retries must be a whole number."),
        ({"max_retries": "-1"}, "max_retries", "Retries must be at least 0."),
        ({"handler": "2bad"}, "handler", "Handler must be an identifier such as main."),
        ({"code": "  "}, "code", "Code may not be blank."),
        ({"args": "[2, 3"}, "args",
         "Arguments: not valid JSON (Expecting ',' delimiter: line 1 column 6 (char 5))."),
    ],
)  # fmt: skip
def test_the_new_job_form_says_each_problem_beside_its_field(web, change, field, said):
    page = web.post("/app/jobs/new", {**JOB, **change})
    assert page.status_code == 400
    text = page.content.decode()
    assert error_beside(text, field) == said
    assert_no_api_names(text)


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        ({"timeout_ms": "50"}, "timeout_ms", "Timeout (ms) must be at least 100."),
        ({"memory_mb": "9999"}, "memory_mb", "Memory (MB): 9999 is over this tenant's cap of 512."),
        ({"name": "Bad Name"}, "name", None),
        ({"dependencies": "{", "runtime": "node"}, "dependencies", None),
    ],
)
def test_the_deploy_form_says_each_problem_beside_its_field(web, change, field, said):
    form = {**JOB, "name": "adder", "requirements": "", "dependencies": "{}", "description": "", **change}
    page = web.post("/app/functions/new", form)
    assert page.status_code == 400
    text = page.content.decode()
    found = error_beside(text, field)
    assert found == said if said else found.startswith(f"{('Name', 'Dependencies')[field != 'name']}")
    assert_no_api_names(text)


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        ({"cron": "99 * * * *"}, "cron", "Cron: bad minute."),
        ({"cron": "* * *"}, "cron", None),
        ({"cron": "* * * * *"}, "cron", "Cron: fires every 60 s; this tenant's minimum interval is 300 s."),
        ({"timezone": "Mars/Olympus"}, "timezone", None),
        ({"max_failures": "-3"}, "max_failures",
         "Pause after failures must be a whole number (0: never pause)."),
        ({"args": '{"a": 1}'}, "args", "Arguments must be a JSON array, e.g. [2, 3]."),
        ({"qualifier": "²"}, "qualifier", None),
        ({"name": "Bad Name"}, "name", None),
    ],
)  # fmt: skip
def test_the_schedule_form_says_each_problem_beside_its_field(alice, web, adder, change, field, said):
    quota = alice.tenant.quota
    quota.min_schedule_interval_s = 300
    quota.save()
    page = web.post("/app/schedules/new", {**SCHEDULE, **change})
    assert page.status_code == 400 and not Schedule.objects.exists()
    text = page.content.decode()
    found = error_beside(text, field)
    label = {"cron": "Cron", "timezone": "Time zone", "qualifier": "Version or alias", "name": "Name"}
    assert found == said if said else found.startswith(label[field])
    assert_no_api_names(text)


def test_deploying_under_a_taken_name_says_so_beside_the_name(web, adder):
    form = {**JOB, "name": "adder", "requirements": "", "dependencies": "{}", "description": ""}
    page = web.post("/app/functions/new", form).content.decode()
    assert error_beside(page, "name") == (
        "Name: a function named adder exists; deploy a new version of it instead."
    )


def test_editing_a_schedule_says_a_taken_name_and_a_bad_expression_beside_their_fields(web, adder):
    assert web.post("/app/schedules/new", SCHEDULE).status_code == 302
    taken = web.post("/app/schedules/new", SCHEDULE).content.decode()
    assert error_beside(taken, "name") == "Name: a schedule named nightly exists."
    edited = web.post("/app/schedules/nightly/", {**SCHEDULE, "cron": "0 25 * * *"}).content.decode()
    assert error_beside(edited, "cron") == "Cron: bad hour."
    assert_no_api_names(edited)


def test_the_endpoint_form_says_each_problem_beside_its_field(web, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    form = {"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"], "function": "", "description": ""}
    page = web.post("/app/webhooks/", form).content.decode()
    assert error_beside(page, "url").startswith("URL: 127.0.0.1 is not a public address")
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    page = web.post("/app/webhooks/", {**form, "events": []}).content.decode()
    assert re.search(r'id="events-error" role="alert">Events: a non-empty list of event types\.<', page)
    page = web.post("/app/webhooks/", {**form, "function": "nope"}).content.decode()
    assert error_beside(page, "function") == "Function: no function named nope."
    assert_no_api_names(page)
    assert not WebhookEndpoint.objects.exists()


def test_the_api_key_form_says_a_missing_name_beside_it(web):
    page = web.post("/app/keys/", {"name": " ", "scope": "read"})
    assert page.status_code == 400
    said = error_beside(page.content.decode(), "name")
    assert said == "Name is required: say what will use the key, such as billing-service."


def test_the_invitation_form_says_each_problem_beside_its_field(web):
    page = web.post("/app/members/", {"action": "invite", "email": "nobody", "role": "member"})
    assert page.status_code == 400
    text = page.content.decode()
    assert error_beside(text, "email") == "Email: enter the person's email address."
    assert 'value="nobody"' in text  # what was typed stays
    page = web.post("/app/members/", {"action": "invite", "email": "alice@acme.test", "role": "member"})
    assert error_beside(page.content.decode(), "email") == "Email: alice@acme.test is already a member."
    page = web.post("/app/members/", {"action": "invite", "email": "sam@acme.test", "role": "god"})
    assert error_beside(page.content.decode(), "role") == "Role must be one of owner, member, viewer."
    assert_no_api_names(page.content.decode())


def test_the_alias_form_words_its_refusal_with_the_labels(web, adder):
    form = {"alias": "prod", "version": "1", "additional_version": "", "weight": "0.5"}
    page = web.post("/app/functions/adder/alias", form, follow=True).content.decode()
    assert "Canary share: needs Canary version (the version that gets this share of calls)" in visible(page)
    page = web.post("/app/functions/adder/alias", {**form, "additional_version": "1"}, follow=True)
    assert "Canary version: must differ from version" in visible(page.content.decode())
    assert_no_api_names(page.content.decode())


def test_delivery_errors_are_in_plain_words_with_the_raw_text_on_demand(alice, web):
    endpoint = WebhookEndpoint.objects.create(
        tenant=alice.tenant, url="https://hooks.example.com/x", events=["job.dead"], secret="whsec_x"
    )
    event = Event.objects.create(tenant=alice.tenant, type="job.dead", body="{}")
    delivery = Delivery.objects.create(
        tenant=alice.tenant,
        endpoint=endpoint,
        url=endpoint.url,
        webhook_id="msg_1",
        type="job.dead",
        event=event,
    )
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        started_at=delivery.created_at,
        error="ConnectError: [Errno 111] Connection refused",
    )
    page = web.get(f"/app/webhooks/{endpoint.id}/").content.decode()
    assert "Connection refused by the endpoint" in visible(page)
    assert 'title="ConnectError: [Errno 111] Connection refused"' in page
    assert_no_api_names(page)


def test_the_wording_helpers():
    assert beside("timeout_ms", "Ensure this value is greater than or equal to 100.") == (
        "Timeout (ms) must be at least 100."
    )
    assert beside("memory_mb", "memory_mb: 600 is over this tenant's cap of 512") == (
        "Memory (MB): 600 is over this tenant's cap of 512."
    )
    assert beside("cron", "cron: Bad minute") == "Cron: bad minute."
    assert in_words("run_at: at most 2592000 s ahead") == "Run at: at most 2592000 s ahead"
    assert in_words("weight: needs additional_version") == "Canary share: needs Canary version"
    assert in_words("no function named max_retries_x") == "no function named max_retries_x"  # not a name
