"""The one Standard Webhooks implementation (lambdasite/standard_webhooks.py) against the reference
library receivers verify with: each accepts what the other signs, in both directions."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from lambdasite import standard_webhooks

BODY = '{"type": "job.succeeded", "data": {"note": "caf\u00e9"}}'


def test_what_it_signs_the_reference_library_verifies():
    secret = standard_webhooks.new_secret()
    now = datetime.now(tz=UTC)
    signed = standard_webhooks.headers(secret=secret, webhook_id="msg_1", body=BODY, at=now)
    assert signed["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret).verify(BODY, signed) == {"type": "job.succeeded", "data": {"note": "caf\u00e9"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(standard_webhooks.new_secret()).verify(BODY, signed)


def test_what_the_reference_library_signs_it_verifies():
    secret = standard_webhooks.new_secret()
    at = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)
    signature = Webhook(secret).sign("msg_2", at, BODY)
    timestamp = str(int(at.timestamp()))
    check = {"secret": secret, "webhook_id": "msg_2", "timestamp": timestamp, "body": BODY.encode()}
    assert standard_webhooks.problem(**check, signature=signature) is None
    # one of several, as during a rotation (an unreadable one among them is just no match)
    assert standard_webhooks.problem(**check, signature=f"v1,AAAA v1,%%% {signature}") is None
    assert standard_webhooks.problem(**{**check, "webhook_id": "msg_3"}, signature=signature) == (
        "signature does not match"
    )
    assert standard_webhooks.problem(**{**check, "timestamp": "1"}, signature=signature) == (
        "signature does not match"
    )
    assert standard_webhooks.problem(**check, signature="v2," + signature[3:]) == (
        "webhook-signature has no v1 signature"
    )


def test_a_secret_without_the_prefix_is_used_as_its_bytes():
    """A route's secret is whatever its tenant set; only a whsec_ one is base64 (as the spec says)."""
    signed = standard_webhooks.headers(secret="plain key", webhook_id="m", body=b"{}", at=1_800_000_000)
    check = {"webhook_id": "m", "timestamp": "1800000000", "signature": signed["webhook-signature"]}
    assert standard_webhooks.problem(secret="plain key", body=b"{}", **check) is None
    as_whsec = "whsec_" + base64.b64encode(b"plain key").decode()
    assert standard_webhooks.problem(secret=as_whsec, body=b"{}", **check) is None
    assert standard_webhooks.problem(secret="whsec_not base64!", body=b"{}", **check) is not None
