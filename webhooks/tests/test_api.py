"""The webhooks API: endpoints (secret shown once, rotation), the SSRF rule on every URL a tenant
gives, deliveries, the callback secret, and tenant isolation."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from functions.tests.support import call
from webhooks.models import Delivery, WebhookEndpoint
from webhooks.services import delivery

pytestmark = pytest.mark.django_db

HOOK = {"url": "https://hooks.example.com/lambdasite", "events": ["job.succeeded", "job.failed"]}


@pytest.fixture(autouse=True)
def resolvable(monkeypatch):
    """hooks.example.com stands for a public receiver (the tests reach no network: only its name
    is resolved, to a documentation address that is global)."""
    import socket

    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "hooks.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]
        if host == "internal.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_an_endpoint_shows_its_secret_once_and_can_rotate_it(alice):
    created = call(alice, "POST", "/api/v1/webhooks", HOOK)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["job.failed", "job.succeeded"]
    fetched = call(alice, "GET", f"/api/v1/webhooks/{body['id']}").json()
    assert "secret" not in fetched
    assert all("secret" not in e for e in call(alice, "GET", "/api/v1/webhooks").json())
    rotated = call(alice, "POST", f"/api/v1/webhooks/{body['id']}/rotate-secret").json()
    assert rotated["secret"] != body["secret"] and WebhookEndpoint.objects.get().secret == rotated["secret"]
    patched = call(
        alice, "PATCH", f"/api/v1/webhooks/{body['id']}", {"events": ["job.dead"], "enabled": False}
    )
    assert patched.json()["events"] == ["job.dead"] and patched.json()["enabled"] is False
    assert call(alice, "DELETE", f"/api/v1/webhooks/{body['id']}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://localhost/hook",  # a name that resolves to a private address
        "https://internal.example.com/hook",  # a public-looking name that resolves to 10.1.2.3
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "ftp://hooks.example.com/x",
        "https://user:pass@hooks.example.com/x",
        "http://hooks.example.com/\u0001",  # httpx refused it at every attempt: stuck first in line
        "http://hooks.example.com/a\x7f",
        "http://[::ffff:169.254.169.254]/",
        "http://[fec0::1]/hook",
        "http://2130706433/",
    ],
)
def test_private_and_odd_urls_are_refused_everywhere(alice, url):
    endpoint = call(alice, "POST", "/api/v1/webhooks", {**HOOK, "url": url})
    assert endpoint.status_code == 400 and "url" in endpoint.json()["error"]["message"]
    job = call(
        alice, "POST", "/api/v1/jobs", {"runtime": "python", "code": "def main(): pass", "callback_url": url}
    )
    if url == "https://internal.example.com/hook":
        # a job's callback is checked without DNS on the submit path; its name is checked at delivery
        assert job.status_code == 202
        status, error, _, _ = delivery.post(url, b"{}", {})
        assert status is None and error.startswith("refused") and "10.1.2.3" in error
    else:
        assert job.status_code == 400 and "callback_url" in job.json()["error"]["message"]
    assert not WebhookEndpoint.objects.exists()


def test_a_name_that_does_not_resolve_in_time_is_refused(alice, monkeypatch, settings):
    import time

    settings.WEBHOOK_RESOLVE_TIMEOUT_S = 0.2

    def slow(*args, **kwargs):
        time.sleep(1)
        raise socket.gaierror("too late")

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    started = time.monotonic()
    response = call(alice, "POST", "/api/v1/webhooks", {**HOOK, "url": "https://slow.example.com/hook"})
    assert response.status_code == 400 and "did not resolve within" in response.json()["error"]["message"]
    assert time.monotonic() - started < 0.9


def test_the_setting_allows_private_networks_for_development(alice, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    assert (
        call(alice, "POST", "/api/v1/webhooks", {**HOOK, "url": "http://127.0.0.1:9/hook"}).status_code == 201
    )


@pytest.mark.parametrize(
    ("change", "word"),
    [({"events": []}, "events"), ({"events": ["job.exploded"]}, "events"), ({"function": "nope"}, "function"),
     ({"surprise": 1}, "surprise")],
)  # fmt: skip
def test_bad_endpoints_are_refused(alice, change, word):
    response = call(alice, "POST", "/api/v1/webhooks", {**HOOK, **change})
    assert response.status_code in (400, 404) and word in json.dumps(response.json())


def test_the_number_of_endpoints_is_capped(alice):
    quota = alice.tenant.quota
    quota.max_webhook_endpoints = 1
    quota.save()
    assert call(alice, "POST", "/api/v1/webhooks", HOOK).status_code == 201
    refused = call(alice, "POST", "/api/v1/webhooks", HOOK)
    assert refused.status_code == 403 and "Retry-After" not in refused  # a fixed cap: waiting cannot help
    assert refused.json()["error"]["code"] == "quota_exceeded"


def test_the_callback_secret_can_be_rotated(alice):
    first = call(alice, "POST", "/api/v1/webhooks/callback-secret").json()["secret"]
    second = call(alice, "POST", "/api/v1/webhooks/callback-secret").json()["secret"]
    assert first.startswith("whsec_") and first != second


def test_another_tenants_endpoints_are_404_everywhere(alice, bob):
    endpoint_id = call(alice, "POST", "/api/v1/webhooks", HOOK).json()["id"]
    missing = "00000000-0000-0000-0000-000000000000"
    for method, path, body in [
        ("GET", f"/api/v1/webhooks/{endpoint_id}", None),
        ("PATCH", f"/api/v1/webhooks/{endpoint_id}", {"enabled": False}),
        ("DELETE", f"/api/v1/webhooks/{endpoint_id}", None),
        ("POST", f"/api/v1/webhooks/{endpoint_id}/rotate-secret", None),
        ("GET", f"/api/v1/webhooks/{endpoint_id}/deliveries", None),
        ("POST", f"/api/v1/webhooks/{endpoint_id}/deliveries/{missing}/redeliver", None),
        ("POST", f"/api/v1/webhooks/{endpoint_id}/test", None),
    ]:
        response = call(bob, method, path, body)
        assert response.status_code == 404, (method, path)
        assert call(bob, method, path.replace(endpoint_id, missing), body).json() == response.json()
    assert call(bob, "GET", "/api/v1/webhooks").json() == []
    assert WebhookEndpoint.objects.get().enabled


def test_the_schema_documents_the_new_endpoints(client):
    schema = client.get("/api/schema/").content.decode()
    for operation in (
        "webhooks_create",
        "webhooks_redeliver",
        "webhooks_test",
        "schedules_create",
        "schedules_runs",
    ):
        assert operation in schema
    assert "callback_url" in schema and "delay_s" in schema and "run_at" in schema


def test_a_control_character_is_refused_in_the_standard_envelope_on_every_url_field(alice):
    url = "http://hooks.example.com/\u0001"
    created = call(alice, "POST", "/api/v1/webhooks", {**HOOK, "url": url})
    assert created.status_code == 400
    error = created.json()["error"]
    assert error["code"] == "validation_error" and "control characters" in error["message"]
    endpoint_id = call(alice, "POST", "/api/v1/webhooks", HOOK).json()["id"]
    patched = call(alice, "PATCH", f"/api/v1/webhooks/{endpoint_id}", {"url": url})
    assert patched.status_code == 400 and patched.json()["error"]["code"] == "validation_error"
    assert WebhookEndpoint.objects.get().url == HOOK["url"]


def test_webhook_writes_are_throttled_per_tenant_with_retry_after(alice, bob, settings):
    settings.WEBHOOK_WRITES_PER_MINUTE = 3
    endpoint_id = call(alice, "POST", "/api/v1/webhooks", HOOK).json()["id"]
    assert call(alice, "POST", f"/api/v1/webhooks/{endpoint_id}/rotate-secret").status_code == 200
    assert call(alice, "PATCH", f"/api/v1/webhooks/{endpoint_id}", {"enabled": False}).status_code == 200
    for method, path, body in [
        ("POST", "/api/v1/webhooks", HOOK),
        ("PATCH", f"/api/v1/webhooks/{endpoint_id}", {"enabled": True}),
        ("POST", f"/api/v1/webhooks/{endpoint_id}/rotate-secret", None),
        ("DELETE", f"/api/v1/webhooks/{endpoint_id}", None),
        ("POST", "/api/v1/webhooks/callback-secret", None),
    ]:
        refused = call(alice, method, path, body)
        assert refused.status_code == 429, (method, path)
        assert int(refused["Retry-After"]) >= 1
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and error["details"]["retry_after"] >= 1
    assert call(alice, "GET", f"/api/v1/webhooks/{endpoint_id}").status_code == 200  # reads are not
    assert call(bob, "POST", "/api/v1/webhooks", HOOK).status_code == 201  # another tenant's bucket
    assert WebhookEndpoint.objects.filter(tenant=alice.tenant).count() == 1


def test_a_test_event_is_queued_as_a_delivery_at_most_once_per_interval(alice, settings):
    settings.WEBHOOK_TEST_INTERVAL_S = 5
    endpoint_id = call(alice, "POST", "/api/v1/webhooks", HOOK).json()["id"]
    sent = call(alice, "POST", f"/api/v1/webhooks/{endpoint_id}/test")
    assert sent.status_code == 202, sent.json()
    body = sent.json()
    assert (body["type"], body["status"], body["url"], body["job_id"]) == (
        "webhook.test",
        "pending",
        HOOK["url"],
        None,
    )
    listed = call(alice, "GET", f"/api/v1/webhooks/{endpoint_id}/deliveries").json()
    assert [d["id"] for d in listed] == [body["id"]]
    event = json.loads(Delivery.objects.get().body)
    assert event["type"] == "webhook.test" and event["data"]["endpoint"] == endpoint_id
    again = call(alice, "POST", f"/api/v1/webhooks/{endpoint_id}/test")
    assert again.status_code == 429 and 1 <= int(again["Retry-After"]) <= 5
    assert again.json()["error"]["code"] == "rate_limited"
    Delivery.objects.update(created_at=timezone.now() - timedelta(seconds=6))
    assert call(alice, "POST", f"/api/v1/webhooks/{endpoint_id}/test").status_code == 202
    call(alice, "PATCH", f"/api/v1/webhooks/{endpoint_id}", {"enabled": False})
    disabled = call(alice, "POST", f"/api/v1/webhooks/{endpoint_id}/test")
    assert disabled.status_code == 409 and disabled.json()["error"]["code"] == "endpoint_disabled"
