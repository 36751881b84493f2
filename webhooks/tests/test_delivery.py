"""Webhook deliveries against a real local HTTP receiver (the private-network rule lifted for it, as
WEBHOOK_ALLOW_PRIVATE_NETWORKS does in development), PostgreSQL and Redis; the retry clock injected."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from jobs.models import Job, Status
from jobs.services.actions import job_cancel
from webhooks import outbox
from webhooks.models import Delivery, OutboxEvent
from webhooks.services import delivery, endpoints

pytestmark = pytest.mark.django_db


class Receiver:
    """An HTTP server on 127.0.0.1 that answers from a script of (status, headers) and records requests."""

    def __init__(self, script=None) -> None:
        self.script = list(script or [])
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                outer.requests.append(
                    {"headers": dict(self.headers.items()), "body": body, "path": self.path}
                )
                status, headers = outer.script.pop(0) if outer.script else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def private_ok(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def receiver(private_ok):
    found = Receiver()
    yield found
    found.close()


def finished_job(persona, status=Status.SUCCEEDED, **fields) -> Job:
    job = Job.objects.create(
        tenant=persona.tenant, runtime="python", code="def main(): return 5", timeout_ms=1000, memory_mb=64,
        status=Status.RUNNING, **fields,
    )  # fmt: skip
    job.status, job.result, job.finished_at = status, 5, timezone.now()
    job.save()
    outbox.record_job_outcome(job)
    return job


def pump(now=None) -> list[Delivery]:
    """What the delivery process does in one pass (fan out, claim what is due, send), at ``now``."""
    delivery.fanout()
    sent = []
    for delivery_id in delivery.claim(limit=50, now=now):
        sent.append(delivery.send(delivery_id, now=now))
    return sent


def test_a_delivery_is_signed_as_documented_and_carries_the_job(alice, receiver):
    endpoint = endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.succeeded"])
    outbox.forget(alice.tenant.id)
    job = finished_job(alice)
    [done] = pump()
    assert done.status == Delivery.Status.SUCCEEDED and done.attempts == 1
    [request] = receiver.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    # the documented algorithm: base64(HMAC-SHA256(secret bytes, "id.timestamp.body"))
    key = base64.b64decode(endpoint.secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{request['body']}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    payload = Webhook(endpoint.secret).verify(request["body"], headers)  # the reference library agrees
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == str(job.id)
    assert payload["data"]["status"] == "succeeded" and payload["data"]["result"] == 5
    assert headers["content-type"] == "application/json"


def test_500_twice_then_200_gives_exactly_one_successful_delivery_after_retries(alice, private_ok):
    receiver = Receiver([(500, {}), (500, {})])
    try:
        endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.succeeded"])
        outbox.forget(alice.tenant.id)
        finished_job(alice)
        now = timezone.now() + timedelta(seconds=1)  # the pass runs just after the outcome
        [first] = pump(now)
        assert first.status == Delivery.Status.PENDING and first.last_status_code == 500
        assert 4 <= (first.next_attempt_at - now).total_seconds() <= 6  # 5 s, jittered
        assert pump(now) == []  # not due yet
        [second] = pump(now + timedelta(seconds=7))
        assert second.status == Delivery.Status.PENDING and second.attempts == 2
        assert 24 <= (second.next_attempt_at - (now + timedelta(seconds=7))).total_seconds() <= 36  # 30 s
        [third] = pump(now + timedelta(minutes=1))
        assert third.status == Delivery.Status.SUCCEEDED and third.attempts == 3
        assert pump(now + timedelta(hours=1)) == []
        assert [a.status_code for a in third.attempt_set.all()] == [500, 500, 200]
        assert len(receiver.requests) == 3
        assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1  # one message, retried
    finally:
        receiver.close()


def test_a_receiver_that_is_down_gets_its_delivery_when_it_comes_back(alice, private_ok):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here now
    url = f"http://127.0.0.1:{port}/hook"
    endpoints.endpoint_create(tenant=alice.tenant, url=url, events=["job.failed"])
    outbox.forget(alice.tenant.id)
    finished_job(alice, status=Status.FAILED)
    now = timezone.now() + timedelta(seconds=1)
    [down] = pump(now)
    assert down.status == Delivery.Status.PENDING and down.last_status_code is None
    assert "ConnectError" in down.last_error
    receiver = Receiver()
    receiver.server.server_close()  # rebind the receiver on the port that was down
    receiver.server = type(receiver.server)(("127.0.0.1", port), receiver.server.RequestHandlerClass)
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    try:
        [back] = pump(now + timedelta(seconds=10))
        assert back.status == Delivery.Status.SUCCEEDED and len(receiver.requests) == 1
    finally:
        receiver.close()


def test_retry_after_is_honoured_and_redirects_are_not_followed(alice, private_ok):
    receiver = Receiver([(503, {"Retry-After": "600"}), (302, {"Location": "http://169.254.169.254/"})])
    try:
        endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.succeeded"])
        outbox.forget(alice.tenant.id)
        finished_job(alice)
        now = timezone.now() + timedelta(seconds=1)  # the pass runs just after the outcome
        [first] = pump(now)
        assert (first.next_attempt_at - now).total_seconds() >= 600
        [second] = pump(now + timedelta(seconds=601))
        assert second.status == Delivery.Status.PENDING and second.last_status_code == 302
        assert len(receiver.requests) == 2  # the redirect's target was never asked
    finally:
        receiver.close()


def test_after_the_last_retry_the_delivery_fails(alice, private_ok, settings):
    settings.WEBHOOK_RETRY_DELAYS_S = "5,30"
    receiver = Receiver([(500, {})] * 5)
    try:
        endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.succeeded"])
        outbox.forget(alice.tenant.id)
        finished_job(alice)
        now = timezone.now() + timedelta(seconds=1)  # the pass runs just after the outcome
        for step in (0, 10, 60):
            [last] = pump(now + timedelta(seconds=step))
        assert last.status == Delivery.Status.FAILED and last.attempts == 3 and last.next_attempt_at is None
        assert pump(now + timedelta(days=1)) == []
    finally:
        receiver.close()


def test_redeliver_sends_it_again_with_the_same_webhook_id(alice, receiver):
    endpoint = endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.succeeded"])
    outbox.forget(alice.tenant.id)
    finished_job(alice)
    [done] = pump()
    response = alice.client.post(f"/api/v1/webhooks/{endpoint.id}/deliveries/{done.id}/redeliver")
    assert response.status_code == 202
    pump()
    first, second = receiver.requests
    assert (
        first["headers"]["webhook-id"] == second["headers"]["webhook-id"] and first["body"] == second["body"]
    )
    deliveries = alice.client.get(f"/api/v1/webhooks/{endpoint.id}/deliveries").json()
    assert len(deliveries) == 2 and all(d["status"] == "succeeded" for d in deliveries)
    assert deliveries[0]["attempt_history"][0]["status_code"] == 200


def test_events_go_only_to_endpoints_that_want_them(alice, bob, receiver):
    endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.failed"])
    endpoints.endpoint_create(tenant=bob.tenant, url=receiver.url, events=["job.succeeded"])
    outbox.forget(alice.tenant.id)
    outbox.forget(bob.tenant.id)
    finished_job(alice)  # succeeded: alice's endpoint wants failures only
    assert pump() == []
    job = Job.objects.create(
        tenant=alice.tenant, runtime="python", code="x", timeout_ms=1000, memory_mb=64, status=Status.QUEUED
    )
    job_cancel(job=job)  # cancelled: nobody subscribed
    assert pump() == [] and not OutboxEvent.objects.exists()


def test_a_one_off_callback_url_is_signed_with_the_tenants_callback_secret(alice, receiver):
    secret = endpoints.callback_secret(tenant=alice.tenant)
    job = finished_job(alice, callback_url=receiver.url)
    [done] = pump()
    assert done.status == Delivery.Status.SUCCEEDED and done.endpoint is None
    [request] = receiver.requests
    payload = Webhook(secret).verify(request["body"], request["headers"])
    assert payload["data"]["id"] == str(job.id)


def test_an_endpoint_failing_for_days_is_disabled_with_a_reason(alice, private_ok, settings):
    settings.WEBHOOK_DISABLE_AFTER_S = 3600
    receiver = Receiver([(500, {})] * 20)
    try:
        endpoint = endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.succeeded"])
        outbox.forget(alice.tenant.id)
        finished_job(alice)
        now = timezone.now() + timedelta(seconds=1)  # the pass runs just after the outcome
        pump(now)
        endpoint.refresh_from_db()
        assert endpoint.failing_since is not None and endpoint.enabled
        pump(now + timedelta(hours=2))
        endpoint.refresh_from_db()
        assert not endpoint.enabled and "every delivery failed since" in endpoint.disabled_reason
        assert Delivery.objects.get().status == Delivery.Status.FAILED
        body = alice.client.get(f"/api/v1/webhooks/{endpoint.id}").json()
        assert body["enabled"] is False and "failed since" in body["disabled_reason"]
    finally:
        receiver.close()


def test_a_worker_crash_mid_send_leaves_a_lease_that_expires_and_the_delivery_is_sent(alice, receiver):
    endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.succeeded"])
    outbox.forget(alice.tenant.id)
    finished_job(alice)
    delivery.fanout()
    now = timezone.now() + timedelta(seconds=1)
    claimed = delivery.claim(limit=10, now=now)  # ... and the process dies before sending
    assert len(claimed) == 1
    assert delivery.claim(limit=10, now=now + timedelta(seconds=5)) == []  # leased: nobody else sends it
    later = now + timedelta(seconds=120)
    [sent] = [delivery.send(d, now=later) for d in delivery.claim(limit=10, now=later)]
    assert sent.status == Delivery.Status.SUCCEEDED and len(receiver.requests) == 1
