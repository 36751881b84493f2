"""A test event ("Send test event") through the real delivery path to a local HTTP receiver: signed
like any event, checked by the SSRF rule when sent, recorded with its outcome, never retried."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from functions.tests.support import call
from webhooks.models import Delivery, WebhookEndpoint
from webhooks.services import endpoints

from .test_delivery import Receiver, pump

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_ok(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True  # the receiver is on 127.0.0.1, as in development


def send_test(persona, endpoint: WebhookEndpoint):
    response = call(persona, "POST", f"/api/v1/webhooks/{endpoint.id}/test")
    assert response.status_code == 202, response.json()
    return response.json()


def test_a_test_event_reaches_the_receiver_signed_and_is_listed_with_its_outcome(alice, private_ok):
    receiver = Receiver()
    try:
        endpoint = endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.dead"])
        queued = send_test(alice, endpoint)
        [done] = pump()
        assert done.status == Delivery.Status.SUCCEEDED and done.attempts == 1
        [request] = receiver.requests
        payload = Webhook(endpoint.secret).verify(request["body"], request["headers"])  # the signature holds
        assert payload["type"] == "webhook.test" and payload["data"]["endpoint"] == str(endpoint.id)
        assert request["headers"]["webhook-id"] == queued["webhook_id"]
        [listed] = call(alice, "GET", f"/api/v1/webhooks/{endpoint.id}/deliveries").json()
        assert listed["status"] == "succeeded" and listed["attempt_history"][0]["status_code"] == 200
    finally:
        receiver.close()


def test_a_failed_test_event_is_not_retried_and_is_no_strike_against_the_endpoint(alice, private_ok):
    receiver = Receiver([(500, {})])
    try:
        endpoint = endpoints.endpoint_create(tenant=alice.tenant, url=receiver.url, events=["job.dead"])
        send_test(alice, endpoint)
        [done] = pump()
        assert (done.status, done.attempts, done.next_attempt_at) == (Delivery.Status.FAILED, 1, None)
        [attempt] = done.attempt_set.all()
        assert attempt.error_words == "The endpoint answered 500 Internal Server Error"
        assert WebhookEndpoint.objects.get().failing_since is None
        assert pump() == [] and len(receiver.requests) == 1
    finally:
        receiver.close()


def test_a_test_event_meets_the_ssrf_rule_when_it_is_sent(alice, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    endpoint = endpoints.endpoint_create(
        tenant=alice.tenant, url="http://127.0.0.1:9/hook", events=["job.dead"]
    )
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False  # e.g. the deployment's setting changed since
    send_test(alice, endpoint)
    [done] = pump()
    assert done.status == Delivery.Status.FAILED and done.last_error.startswith("refused: ")
    assert done.attempt_set.get().error_words.startswith("Not sent: 127.0.0.1 is not a public address")
