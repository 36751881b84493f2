"""Webhook deliveries against a real local HTTP receiver (the private-network rule lifted for it, as
WEBHOOK_ALLOW_PRIVATE_NETWORKS does in development), PostgreSQL and Redis; the retry clock injected."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import socket
import socketserver
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from jobs.contract import JobSerializer
from jobs.models import Job, Status
from jobs.services.actions import job_cancel
from lambdasite import standard_webhooks
from webhooks import outbox
from webhooks.exceptions import RedeliveryPending
from webhooks.models import Delivery, Event, OutboxEvent
from webhooks.services import delivery, endpoints

pytestmark = pytest.mark.django_db


def serve(server: socketserver.BaseServer) -> None:
    """Serve in a thread, polling often so that ``shutdown()`` returns at once (its default half
    second was a fifth of the unit tier's time)."""
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()


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
        serve(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RawReceiver:
    """A TCP server on 127.0.0.1 that reads one request and then answers with ``answer(sock)``: bytes
    dripped, garbage, whatever the test needs. Records the request's head and when the client left."""

    def __init__(self, answer) -> None:
        self.heads: list[bytes] = []
        self.gone = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = b""
                while b"\r\n\r\n" not in data:
                    data += self.request.recv(65536)
                head, rest = data.split(b"\r\n\r\n", 1)
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(rest) < length:
                    rest += self.request.recv(65536)
                outer.heads.append(head)
                try:
                    answer(self.request)
                except OSError:
                    pass  # the client hung up, as it should
                finally:
                    outer.gone.set()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        serve(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def drip(data: bytes, every_s: float):
    def answer(sock):
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(every_s)

    return answer


@pytest.fixture
def private_ok(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def receiver(private_ok):
    found = Receiver()
    yield found
    found.close()


def subscribed_and_finished(persona, url: str):
    """An endpoint of the persona's tenant for job.succeeded at ``url``, then one of its jobs
    finished (its outcome in the outbox); -> (endpoint, job)."""
    endpoint = endpoints.endpoint_create(tenant=persona.tenant, url=url, events=["job.succeeded"])
    outbox.forget(persona.tenant.id)
    return endpoint, finished_job(persona)


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
    endpoint, job = subscribed_and_finished(alice, receiver.url)
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
    assert payload["data"] == json.loads(json.dumps(JobSerializer(Job.objects.get(pk=job.id)).data))
    assert headers["content-type"] == "application/json"


def test_500_twice_then_200_gives_exactly_one_successful_delivery_after_retries(alice, private_ok):
    receiver = Receiver([(500, {}), (500, {})])
    try:
        subscribed_and_finished(alice, receiver.url)
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
    serve(receiver.server)
    try:
        [back] = pump(now + timedelta(seconds=10))
        assert back.status == Delivery.Status.SUCCEEDED and len(receiver.requests) == 1
    finally:
        receiver.close()


def test_retry_after_is_honoured_and_redirects_are_not_followed(alice, private_ok):
    receiver = Receiver([(503, {"Retry-After": "600"}), (302, {"Location": "http://169.254.169.254/"})])
    try:
        subscribed_and_finished(alice, receiver.url)
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
        subscribed_and_finished(alice, receiver.url)
        now = timezone.now() + timedelta(seconds=1)  # the pass runs just after the outcome
        for step in (0, 10, 60):
            [last] = pump(now + timedelta(seconds=step))
        assert last.status == Delivery.Status.FAILED and last.attempts == 3 and last.next_attempt_at is None
        assert pump(now + timedelta(days=1)) == []
    finally:
        receiver.close()


def test_redeliver_sends_it_again_with_the_same_webhook_id(alice, receiver):
    endpoint, _ = subscribed_and_finished(alice, receiver.url)
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
        endpoint, _ = subscribed_and_finished(alice, receiver.url)
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
    subscribed_and_finished(alice, receiver.url)
    delivery.fanout()
    now = timezone.now() + timedelta(seconds=1)
    claimed = delivery.claim(limit=10, now=now)  # ... and the process dies before sending
    assert len(claimed) == 1
    assert delivery.claim(limit=10, now=now + timedelta(seconds=5)) == []  # leased: nobody else sends it
    later = now + timedelta(seconds=120)
    [sent] = [delivery.send(d, now=later) for d in delivery.claim(limit=10, now=later)]
    assert sent.status == Delivery.Status.SUCCEEDED and len(receiver.requests) == 1


def a_delivery(persona, url: str, **fields) -> Delivery:
    """A pending delivery as fan-out makes it (or as an older version stored it)."""
    event = Event.objects.create(
        tenant=persona.tenant, type="job.succeeded", body='{"type": "job.succeeded"}'
    )
    return Delivery.objects.create(
        tenant=persona.tenant, url=url, webhook_id=f"msg_{event.pk}", type=event.type, event=event,
        next_attempt_at=timezone.now() - timedelta(seconds=1), **fields,
    )  # fmt: skip


def test_a_receiver_dripping_its_answer_holds_an_attempt_for_the_deadline_not_longer(
    alice, private_ok, settings
):
    """One byte every 0.2 s never trips the per-read timeout; the deadline ends the attempt."""
    settings.WEBHOOK_TIMEOUT_S = 10
    settings.WEBHOOK_DEADLINE_S = 1
    receiver = RawReceiver(drip(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n", 0.2))
    try:
        a_delivery(alice, receiver.url)
        started = time.monotonic()
        [held] = pump()
        assert time.monotonic() - started < 2.5
        assert held.status == Delivery.Status.PENDING and held.last_status_code is None
        assert "deadline" in held.last_error and held.next_attempt_at is not None  # retried later
        assert held.locked_until is None
        assert receiver.gone.wait(3)  # the connection was dropped
    finally:
        receiver.close()


def test_a_body_dripped_after_the_status_is_cut_at_the_deadline_and_the_status_counts(
    alice, private_ok, settings
):
    settings.WEBHOOK_DEADLINE_S = 1
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    receiver = RawReceiver(lambda sock: (sock.sendall(head), drip(b"b" * 1000, 0.2)(sock)))
    try:
        a_delivery(alice, receiver.url)
        started = time.monotonic()
        [done] = pump()
        assert time.monotonic() - started < 2.5
        assert done.status == Delivery.Status.SUCCEEDED and done.last_status_code == 200
        assert set(done.attempt_set.get().response) <= {"b"}
    finally:
        receiver.close()


def test_an_endless_answer_is_read_only_to_its_cap(alice, private_ok):
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (65536, b"c" * 65536)
    sent = []

    def flood(sock):
        sock.sendall(head)
        while True:
            sock.sendall(chunk)
            sent.append(len(chunk))

    receiver = RawReceiver(flood)
    try:
        a_delivery(alice, receiver.url)
        started = time.monotonic()
        [done] = pump()
        assert done.status == Delivery.Status.SUCCEEDED and time.monotonic() - started < 2
        assert done.attempt_set.get().response == "c" * 500
        assert receiver.gone.wait(3)  # hung up on the flood rather than draining it
    finally:
        receiver.close()


def test_identity_is_asked_for_and_a_gzip_answer_is_stored_raw_never_decoded(alice, private_ok):
    bomb = gzip.compress(b"z" * 10_000_000)  # 10 MB that compresses to ~10 KB
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    receiver = RawReceiver(lambda sock: sock.sendall(head + bomb))
    try:
        a_delivery(alice, receiver.url)
        [done] = pump()
        assert done.status == Delivery.Status.SUCCEEDED
        [request_head] = receiver.heads
        assert b"\r\naccept-encoding: identity\r\n" in request_head.lower()
        stored = done.attempt_set.get().response
        assert len(stored) <= 500 and "z" * 20 not in stored
        assert stored.startswith("\x1f\ufffd\x08\ufffd")  # gzip's magic, kept raw (NUL made storable)
    finally:
        receiver.close()


def test_proxy_variables_in_the_environment_are_ignored(alice, receiver, monkeypatch):
    proxy = Receiver()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url.rsplit("/", 1)[0])
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        a_delivery(alice, receiver.url)
        [done] = pump()
        assert done.status == Delivery.Status.SUCCEEDED
        assert len(receiver.requests) == 1 and proxy.requests == []
    finally:
        proxy.close()


def test_a_stored_url_with_a_control_character_is_a_failed_attempt_not_a_stuck_delivery(alice, receiver):
    """Stored before the URL rule refused it: each attempt is recorded and the retries run out."""
    stuck = a_delivery(alice, receiver.url + "/\u0001")
    other = a_delivery(alice, receiver.url)
    now = timezone.now()
    first = {d.pk: d for d in pump(now)}
    assert first[other.pk].status == Delivery.Status.SUCCEEDED
    bad = first[stuck.pk]
    assert bad.status == Delivery.Status.PENDING and "control characters" in bad.last_error
    assert bad.locked_until is None and bad.next_attempt_at > now  # behind the others now, on the schedule
    assert bad.attempt_set.get().error.startswith("refused")
    for day in range(1, 10):
        pump(now + timedelta(days=day))
    bad.refresh_from_db()
    assert bad.status == Delivery.Status.FAILED and bad.attempts == len(delivery.retry_delays()) + 1


def test_any_exception_during_a_send_is_recorded_as_a_failed_attempt_with_its_retry(
    alice, receiver, monkeypatch
):
    def broken(**kwargs):
        raise RuntimeError("signing broke")

    monkeypatch.setattr(standard_webhooks, "headers", broken)
    a_delivery(alice, receiver.url)
    now = timezone.now()
    [failed] = pump(now)
    assert failed.status == Delivery.Status.PENDING and failed.locked_until is None
    assert failed.last_error == "RuntimeError: signing broke" and failed.next_attempt_at > now
    assert failed.attempt_set.get().error == "RuntimeError: signing broke"
    monkeypatch.undo()
    settings_ok = pump(now + timedelta(minutes=1))
    assert [d.status for d in settings_ok] == [Delivery.Status.SUCCEEDED]


def test_a_delivery_claimed_again_and_again_without_a_record_gives_up(alice, receiver):
    stuck = a_delivery(alice, receiver.url, attempts=len(delivery.retry_delays()) + 5)
    [done] = pump()
    assert done.pk == stuck.pk and done.status == Delivery.Status.FAILED and "gave up" in done.last_error
    assert receiver.requests == []


def test_one_event_body_is_stored_for_all_its_deliveries_and_redeliveries(alice, receiver):
    for n in range(3):
        endpoints.endpoint_create(tenant=alice.tenant, url=f"{receiver.url}/{n}", events=["job.succeeded"])
    outbox.forget(alice.tenant.id)
    finished_job(alice, callback_url=receiver.url + "/once")
    sent = pump()
    assert len(sent) == 4 and Event.objects.count() == 1
    event = Event.objects.get()
    assert {d.event_id for d in Delivery.objects.all()} == {event.pk}
    endpoint_delivery = next(d for d in sent if d.endpoint_id)
    delivery.redeliver(delivery=endpoint_delivery)
    pump()
    assert Event.objects.count() == 1 and Delivery.objects.count() == 5
    assert len({r["body"] for r in receiver.requests}) == 1 and len(receiver.requests) == 5


def test_redelivery_is_refused_while_one_is_pending_and_after_the_limit(alice, receiver, settings):
    settings.WEBHOOK_MAX_REDELIVERIES = 2
    endpoint, _ = subscribed_and_finished(alice, receiver.url)
    [done] = pump()
    path = f"/api/v1/webhooks/{endpoint.id}/deliveries/{done.id}/redeliver"
    assert alice.client.post(path).status_code == 202
    pending = alice.client.post(path)  # the first redelivery has not been sent yet
    assert pending.status_code == 409 and pending.json()["error"]["code"] == "redelivery_pending"
    assert "Retry-After" not in pending
    pump()
    assert alice.client.post(path).status_code == 202
    pump()
    refused = alice.client.post(path)
    assert refused.status_code == 409
    assert (
        refused.json()["error"]["code"] == "redelivery_limit"
        and "2 times" in refused.json()["error"]["message"]
    )
    redelivered = Delivery.objects.filter(redelivery=True).first()  # redelivering a copy counts the same
    assert (
        alice.client.post(f"/api/v1/webhooks/{endpoint.id}/deliveries/{redelivered.id}/redeliver").status_code
        == 409
    )
    assert Delivery.objects.count() == 3 and len(receiver.requests) == 3


def test_a_delivery_still_being_retried_may_be_redelivered_once(alice, private_ok):
    failing = Receiver([(500, {})] * 5)
    try:
        endpoints.endpoint_create(tenant=alice.tenant, url=failing.url, events=["job.succeeded"])
        outbox.forget(alice.tenant.id)
        finished_job(alice)
        [retrying] = pump(timezone.now() + timedelta(seconds=1))
        assert retrying.status == Delivery.Status.PENDING
        delivery.redeliver(delivery=retrying)
        with pytest.raises(RedeliveryPending):
            delivery.redeliver(delivery=retrying)
    finally:
        failing.close()


def test_the_claim_takes_tenants_in_turns(alice, bob, receiver):
    noisy = [a_delivery(alice, receiver.url) for _ in range(20)]
    Delivery.objects.filter(pk__in=[d.pk for d in noisy]).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )  # alice's backlog is older than anything bob has
    quiet = a_delivery(bob, receiver.url)
    claimed = delivery.claim(limit=3, per_tenant=10)
    assert quiet.pk in claimed and len(claimed) == 3


def test_a_tenant_with_its_cap_in_flight_gets_no_more_until_one_ends(alice, bob, receiver):
    mine = [a_delivery(alice, receiver.url) for _ in range(5)]
    theirs = a_delivery(bob, receiver.url)
    first = delivery.claim(limit=10, per_tenant=2)
    assert len(first) == 3 and theirs.pk in first
    assert delivery.claim(limit=10, per_tenant=2) == []  # alice has 2 in flight: none of her 3 others
    alices = [pk for pk in first if pk != theirs.pk]
    delivery.send(alices[0])  # one of them ends
    [next_one] = delivery.claim(limit=10, per_tenant=2)
    assert next_one in {d.pk for d in mine} - set(alices)


def test_a_tls_handshake_that_never_ends_is_cut_at_the_deadline(alice, private_ok, settings):
    settings.WEBHOOK_TIMEOUT_S = 10
    settings.WEBHOOK_DEADLINE_S = 0.5
    with socket.socket() as silent:  # the kernel accepts the connection; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        a_delivery(alice, f"https://127.0.0.1:{silent.getsockname()[1]}/hook")
        started = time.monotonic()
        [held] = pump()
    assert time.monotonic() - started < 2
    assert held.status == Delivery.Status.PENDING and "deadline" in held.last_error
