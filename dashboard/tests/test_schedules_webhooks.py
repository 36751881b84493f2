"""The Schedules and Webhooks pages over HTTP: create, edit, preview, pause, run now, history;
endpoints with the secret shown once, deliveries on the job page; roles and tenant isolation."""

from __future__ import annotations

import pytest

from accounts.models import Membership
from accounts.services import membership_set, user_get_or_create
from functions.tests.support import make_adder
from jobs.models import Job
from schedules.models import Schedule
from webhooks.models import Delivery, Event, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def adder(alice):
    return make_adder(alice.tenant)


FORM = {
    **{
        "name": "nightly",
        "function": "adder",
        "qualifier": "",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
    },
    **{
        "args": "[1, 2]",
        "overlap": "skip",
        "catch_up": "latest",
        "max_failures": "3",
        "description": "report",
    },
}


def test_create_edit_pause_resume_and_run_a_schedule(client, alice, adder):
    client.force_login(alice.user)
    created = client.post("/app/schedules/new", FORM)
    assert created.status_code == 302 and created["Location"] == "/app/schedules/nightly/"
    schedule = Schedule.objects.get()
    saved = (schedule.cron, schedule.catch_up, schedule.args, schedule.max_failures)
    assert saved == ("30 2 * * *", "latest", [1, 2], 3)
    page = client.get("/app/schedules/nightly/").content.decode()
    assert "Next runs" in page and page.count(" 02:30 CE") == 5  # in the schedule's zone (CET or CEST)
    client.post("/app/schedules/nightly/", {**FORM, "cron": "0 6 * * *"})
    assert Schedule.objects.get().cron == "0 6 * * *"
    client.post("/app/schedules/nightly/pause")
    assert not Schedule.objects.get().enabled
    assert "paused" in client.get("/app/schedules/").content.decode()
    client.post("/app/schedules/nightly/resume")
    assert Schedule.objects.get().enabled
    client.post("/app/schedules/nightly/run")
    job = Job.objects.get()
    assert "by hand" in client.get("/app/schedules/nightly/").content.decode()
    assert "nightly" in client.get(f"/app/jobs/{job.id}/").content.decode()


def test_the_form_shows_what_is_wrong_and_the_preview_answers(client, alice, adder):
    client.force_login(alice.user)
    bad = client.post("/app/schedules/new", {**FORM, "cron": "99 * * * *"})
    assert bad.status_code == 400 and "cron" in bad.content.decode() and not Schedule.objects.exists()
    preview = client.get("/app/schedules/preview", {"cron": "0 9 * * 1", "timezone": "UTC"}).json()
    assert len(preview["times"]) == 5 and all("T09:00:00" in t for t in preview["times"])
    refused = client.get("/app/schedules/preview", {"cron": "nope", "timezone": "UTC"})
    assert refused.status_code == 400 and refused.json()["error"].startswith("Cron: ")


def test_an_endpoint_shows_its_secret_once_and_deliveries_show_on_the_job_page(client, alice, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    client.force_login(alice.user)
    created = client.post(
        "/app/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]}, follow=True
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in created.content.decode()
    assert endpoint.secret not in client.get("/app/webhooks/").content.decode()
    assert endpoint.secret not in client.get(f"/app/webhooks/{endpoint.id}/").content.decode()
    job = Job.objects.create(tenant=alice.tenant, runtime="python", code="x", timeout_ms=1000, memory_mb=64)
    event = Event.objects.create(tenant=alice.tenant, type="job.succeeded", job_id=job.id, body="{}")
    Delivery.objects.create(tenant=alice.tenant, endpoint=endpoint, url=endpoint.url, webhook_id="msg_1",
                            type="job.succeeded", job_id=job.id, event=event)  # fmt: skip
    assert "msg_1" in client.get(f"/app/jobs/{job.id}/").content.decode()
    assert "msg_1" in client.get(f"/app/webhooks/{endpoint.id}/").content.decode()
    rotated = client.post(f"/app/webhooks/{endpoint.id}/rotate", follow=True)
    endpoint.refresh_from_db()
    assert endpoint.secret in rotated.content.decode()
    client.post(f"/app/webhooks/{endpoint.id}/redeliver", {"delivery": str(Delivery.objects.get().id)})
    assert Delivery.objects.filter(webhook_id="msg_1").count() == 2
    client.post(f"/app/webhooks/{endpoint.id}/disable")
    assert not WebhookEndpoint.objects.get().enabled


def test_adding_an_endpoint_redirects_and_a_reload_neither_repeats_it_nor_shows_the_secret_again(
    client, alice, settings
):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    client.force_login(alice.user)
    created = client.post("/app/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["job.failed"]})
    endpoint = WebhookEndpoint.objects.get()
    assert created.status_code == 302 and created["Location"] == f"/app/webhooks/{endpoint.id}/"
    assert endpoint.secret not in created.content.decode()
    first = client.get(created["Location"])
    assert first.content.decode().count(endpoint.secret) == 1 and first["Cache-Control"] == "no-store"
    reloaded = client.get(created["Location"])
    assert reloaded.status_code == 200 and endpoint.secret not in reloaded.content.decode()
    assert WebhookEndpoint.objects.count() == 1


def test_rotating_a_secret_redirects_and_shows_the_new_secret_once(client, alice, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    client.force_login(alice.user)
    client.post("/app/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["job.failed"]})
    endpoint = WebhookEndpoint.objects.get()
    client.get(f"/app/webhooks/{endpoint.id}/")  # the new endpoint's secret, seen
    rotated = client.post(f"/app/webhooks/{endpoint.id}/rotate")
    assert rotated.status_code == 302 and rotated["Location"] == f"/app/webhooks/{endpoint.id}/"
    endpoint.refresh_from_db()
    assert endpoint.secret in client.get(rotated["Location"]).content.decode()
    assert endpoint.secret not in client.get(rotated["Location"]).content.decode()


@pytest.mark.parametrize(
    ("allow_private", "said", "not_said"),
    [
        (False, "must reach a public address", "private addresses"),
        (True, "also accepts private addresses", "must reach a public address"),
    ],
)
def test_the_help_text_says_what_the_deployment_allows(
    client, alice, settings, allow_private, said, not_said
):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = allow_private
    client.force_login(alice.user)
    page = client.get("/app/webhooks/").content.decode()
    assert said in page and not_said not in page


def test_viewers_cannot_change_schedules_or_webhooks_and_other_tenants_see_nothing(client, alice, bob, adder):
    client.force_login(alice.user)
    client.post("/app/schedules/new", FORM)
    viewer = user_get_or_create(email="vera@acme.test", password="pw")
    membership_set(tenant=alice.tenant, user=viewer, role=Membership.Role.VIEWER)
    client.force_login(viewer)
    assert client.get("/app/schedules/nightly/").status_code == 200
    for path in (
        "/app/schedules/nightly/pause",
        "/app/schedules/nightly/run",
        "/app/schedules/nightly/delete",
    ):
        assert client.post(path).status_code == 403, path
    client.post("/app/schedules/nightly/", {**FORM, "cron": "0 1 * * *"})
    assert Schedule.objects.get().cron == "30 2 * * *" and Schedule.objects.get().enabled
    client.force_login(bob.user)
    assert client.get("/app/schedules/nightly/").status_code == 404
    assert client.post("/app/schedules/nightly/run").status_code == 404
    assert "/app/schedules/nightly/" not in client.get("/app/schedules/").content.decode()
    assert not Job.objects.exists()


def test_a_refused_webhook_action_is_said_on_the_page_not_a_500(alice, client, settings):
    """A throttled rotate or a refused redelivery used to escape the view as a 500."""
    settings.WEBHOOK_WRITES_PER_MINUTE, settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = 1, True
    client.force_login(alice.user)
    created = client.post("/app/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["job.failed"]})
    assert created.status_code == 302
    endpoint = WebhookEndpoint.objects.get(tenant=alice.tenant)
    refused = client.post(f"/app/webhooks/{endpoint.id}/disable", follow=True)
    assert refused.status_code == 200
    assert "webhook changes per minute" in refused.content.decode()


def test_the_schedule_preview_speaks_the_schedules_zone(alice):
    from .pages import signed_in

    web = signed_in(alice.user)
    answer = web.get("/app/schedules/preview", {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}).json()
    assert len(answer["labels"]) == 5 == len(answer["times"])
    first = answer["labels"][0]
    assert " 02:30 CE" in first and ("T01:30:00Z)" in first or "T00:30:00Z)" in first)  # CET or CEST
    refused = web.get("/app/schedules/preview", {"cron": "0 99 * * *", "timezone": "UTC"})
    assert refused.status_code == 400 and refused.json()["error"].startswith("Cron: ")


def test_schedules_say_their_expression_in_words_on_the_list_the_page_and_the_preview(client, alice, adder):
    client.force_login(alice.user)
    assert client.post("/app/schedules/new", {**FORM, "cron": "0 9 * * 1-5"}).status_code == 302
    assert "At 09:00 on Monday to Friday" in client.get("/app/schedules/").content.decode()
    page = client.get("/app/schedules/nightly/").content.decode()
    assert 'id="cron-words">At 09:00 on Monday to Friday <span class="muted">(Europe/Berlin)</span>' in page
    new = client.get("/app/schedules/new").content.decode()  # the default expression, said and previewed
    assert 'id="cron-words">Every hour' in new and new.count(" UTC (") == 5
    preview = client.get("/app/schedules/preview", {"cron": "*/5 * * * *", "timezone": "UTC"}).json()
    assert preview["description"] == "Every 5 minutes"


def test_send_test_event_queues_a_signed_delivery_says_so_and_is_rate_limited(client, alice, bob, settings):
    from webhooks.services import endpoints

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS, settings.WEBHOOK_TEST_INTERVAL_S = True, 5
    endpoint = endpoints.endpoint_create(
        tenant=alice.tenant, url="http://127.0.0.1:9/hook", events=["job.dead"]
    )
    client.force_login(alice.user)
    assert "Send test event" in client.get(f"/app/webhooks/{endpoint.id}/").content.decode()
    sent = client.post(f"/app/webhooks/{endpoint.id}/test")
    assert sent.status_code == 302 and sent["Location"] == f"/app/webhooks/{endpoint.id}/"
    page = client.get(sent["Location"]).content.decode()
    assert "Test event queued" in page and "webhook.test" in page
    [queued] = Delivery.objects.all()
    assert (queued.type, queued.status, queued.endpoint_id) == ("webhook.test", "pending", endpoint.id)
    again = client.post(f"/app/webhooks/{endpoint.id}/test", follow=True).content.decode()
    assert "a test event went to this endpoint" in again and Delivery.objects.count() == 1
    client.force_login(bob.user)
    assert client.post(f"/app/webhooks/{endpoint.id}/test").status_code == 404  # another tenant's
    assert Delivery.objects.count() == 1
