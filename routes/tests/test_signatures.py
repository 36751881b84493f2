"""Signature checks per provider (routes/signatures.py): each accepts what its provider signs and
refuses anything else, with the timestamp window where the scheme has one. The clock is injected."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from lambdasite import standard_webhooks
from routes import signatures
from routes.signatures import Refused, Scheme, sign, verify

NOW = 1_800_000_000
BODY = json.dumps({"id": "evt_123", "event_id": "Ev0001", "type": "x"}).encode()
KEY = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # base64 (Standard Webhooks' own example shape)


def headers_of(signed: dict) -> dict:
    return {name.lower(): value for name, value in signed.items()}


SCHEMES = [
    Scheme("github"),
    Scheme("stripe"),
    Scheme("slack"),
    Scheme("standard-webhooks"),
    Scheme("custom", header="X-Signature", algorithm="sha256", encoding="hex", prefix="sha256="),
    Scheme("custom", header="X-Sig", algorithm="sha1", encoding="base64"),
    Scheme("custom", header="X-Sig", algorithm="sha512", encoding="hex"),
]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: f"{s.preset}-{s.algorithm}-{s.encoding}")
def test_it_accepts_what_the_provider_signs_and_refuses_a_forgery(scheme):
    signed = headers_of(sign(scheme, KEY, BODY, at=NOW, delivery_id="d-1"))
    verify(scheme, KEY, signed, BODY, now=NOW)
    with pytest.raises(Refused, match="does not match"):
        verify(scheme, KEY, signed, BODY + b" ", now=NOW)
    with pytest.raises(Refused, match="does not match"):
        verify(scheme, "another key", signed, BODY, now=NOW)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: f"{s.preset}-{s.algorithm}-{s.encoding}")
def test_it_refuses_a_request_without_its_signature(scheme):
    with pytest.raises(Refused, match="missing"):
        verify(scheme, KEY, {}, BODY, now=NOW)


@pytest.mark.parametrize("preset", ["stripe", "slack", "standard-webhooks"])
def test_a_timestamp_outside_the_window_is_refused_as_expired(preset):
    scheme = Scheme(preset)
    for at in (NOW - 301, NOW + 301):
        signed = headers_of(sign(scheme, KEY, BODY, at=at, delivery_id="d-1"))
        with pytest.raises(Refused) as refused:
            verify(scheme, KEY, signed, BODY, now=NOW, tolerance=300)
        assert refused.value.expired
    for at in (NOW - 300, NOW + 300):
        verify(scheme, KEY, headers_of(sign(scheme, KEY, BODY, at=at, delivery_id="d")), BODY, now=NOW)


def test_an_unsigned_timestamp_is_a_forgery_not_an_expiry():
    signed = headers_of(sign(Scheme("slack"), KEY, BODY, at=NOW))
    signed["x-slack-request-timestamp"] = str(NOW - 10_000)
    with pytest.raises(Refused) as refused:
        verify(Scheme("slack"), KEY, signed, BODY, now=NOW)
    assert not refused.value.expired


def test_each_scheme_names_its_delivery_id():
    github = headers_of(sign(Scheme("github"), KEY, BODY, at=NOW, delivery_id="g-1"))
    assert verify(Scheme("github"), KEY, github, BODY, now=NOW) == "g-1"
    assert verify(
        Scheme("stripe"), KEY, headers_of(sign(Scheme("stripe"), KEY, BODY, at=NOW)), BODY, now=NOW
    ) == ("evt_123")
    assert verify(
        Scheme("slack"), KEY, headers_of(sign(Scheme("slack"), KEY, BODY, at=NOW)), BODY, now=NOW
    ) == ("Ev0001")
    standard = Scheme("standard-webhooks")
    signed = headers_of(sign(standard, KEY, BODY, at=NOW, delivery_id="msg_1"))
    assert verify(standard, KEY, signed, BODY, now=NOW) == "msg_1"
    custom = SCHEMES[4]
    assert verify(custom, KEY, headers_of(sign(custom, KEY, BODY, at=NOW)), BODY, now=NOW) is None


def test_stripe_accepts_any_of_several_v1_signatures_during_a_rotation():
    signed = sign(Scheme("stripe"), KEY, BODY, at=NOW)["Stripe-Signature"]
    t, v1 = signed.split(",")
    header = f"{t},v1={'0' * 64},{v1},v0=abc"
    verify(Scheme("stripe"), KEY, {"stripe-signature": header}, BODY, now=NOW)


def test_standard_webhooks_verifies_what_the_platform_s_own_webhooks_sign():
    """The preset and the platform's webhooks share one implementation (lambdasite/standard_webhooks.py)."""
    secret = standard_webhooks.new_secret()
    body = '{"type": "job.succeeded"}'
    at = datetime.fromtimestamp(NOW, tz=UTC)
    signed = headers_of(standard_webhooks.headers(secret=secret, webhook_id="msg_9", body=body, at=at))
    assert verify(Scheme("standard-webhooks"), secret, signed, body.encode(), now=NOW) == "msg_9"


def test_standard_webhooks_verifies_what_the_reference_library_signs():
    """A sender using the standardwebhooks library, as the spec's own SDKs sign."""
    secret = standard_webhooks.new_secret()
    body = '{"type": "invoice.paid"}'
    at = datetime.fromtimestamp(NOW, tz=UTC)
    signed = {"webhook-id": "msg_10", "webhook-timestamp": str(NOW),
              "webhook-signature": Webhook(secret).sign("msg_10", at, body)}  # fmt: skip
    assert verify(Scheme("standard-webhooks"), secret, signed, body.encode(), now=NOW) == "msg_10"
    with pytest.raises(Refused, match="does not match"):
        verify(Scheme("standard-webhooks"), secret, signed, body.encode() + b" ", now=NOW)


def test_a_custom_prefix_is_required_and_an_overlong_header_refused():
    custom = SCHEMES[4]
    signed = headers_of(sign(custom, KEY, BODY, at=NOW))
    with pytest.raises(Refused, match="must start with sha256="):
        verify(custom, KEY, {"x-signature": signed["x-signature"][7:]}, BODY, now=NOW)
    with pytest.raises(Refused, match="too long"):
        verify(custom, KEY, {"x-signature": "a" * (signatures.MAX_SIGNATURE_HEADER + 1)}, BODY, now=NOW)
