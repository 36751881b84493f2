"""A job's outcome reaches its webhook through the whole system: a real worker runs it in Docker, the
outcome and its event commit together, and the delivery command sends the signed request."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from standardwebhooks import Webhook

from functions.services import deploy
from webhooks.services import endpoints

from .test_delivery import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def test_an_invocation_with_a_callback_and_an_endpoint_delivers_both(alice, run_worker, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    receiver = Receiver()
    try:
        deploy.function_create(
            tenant=alice.tenant, user=None, name="adder", runtime="python",
            spec=deploy.VersionSpec(code="def main(a, b):\n    return a + b\n"),
        )  # fmt: skip
        endpoint = endpoints.endpoint_create(
            tenant=alice.tenant, url=receiver.url + "/all", events=["job.succeeded"]
        )
        callback_secret = endpoints.callback_secret(tenant=alice.tenant)
        response = alice.client.post(
            "/api/v1/functions/adder/invoke",
            data=json.dumps({"args": [2, 3], "callback_url": receiver.url + "/once"}),
            content_type="application/json",
        )
        assert response.status_code == 202, response.json()
        run_worker()
        call_command("webhooks", "--once")
        by_path = {r["path"]: r for r in receiver.requests}
        assert set(by_path) == {"/hook/all", "/hook/once"}
        for path, secret in (("/hook/all", endpoint.secret), ("/hook/once", callback_secret)):
            request = by_path[path]
            payload = Webhook(secret).verify(request["body"], request["headers"])
            assert payload["type"] == "job.succeeded"
            assert payload["data"]["result"] == 5 and payload["data"]["function"] == "adder"
        deliveries = alice.client.get(f"/api/v1/webhooks/{endpoint.id}/deliveries").json()
        assert [d["status"] for d in deliveries] == ["succeeded"]
    finally:
        receiver.close()
