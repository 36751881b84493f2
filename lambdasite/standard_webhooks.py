"""Standard Webhooks (https://www.standardwebhooks.com), the platform's one implementation: signing
what its webhooks send (webhooks/) and checking what a route with the ``standard-webhooks`` preset
receives (routes/signatures.py).

``webhook-signature: v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>``, several
space-separated during a secret's rotation. A ``whsec_`` secret's key is the base64 after the prefix,
as the spec says; any other secret (a route's, set by its tenant) is used as its bytes. The
``standardwebhooks`` library, what receivers verify with, checks in the tests that both agree.

Only the scheme lives here; reading a request's headers, the time window and the wording of a
refusal are the caller's, common to every provider it checks."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import datetime

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    raw = secret.encode()
    if raw.startswith(PREFIX.encode()):
        try:
            return base64.b64decode(raw[len(PREFIX) :], validate=True)
        except binascii.Error:
            pass  # not base64 after all: its bytes, as any other secret
    return raw


def _digest(secret: str, webhook_id: str, timestamp: str, body: bytes) -> bytes:
    message = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(_key(secret), message, hashlib.sha256).digest()


def headers(*, secret: str, webhook_id: str, body: str | bytes, at: datetime | int) -> dict[str, str]:
    """The three headers that sign ``body`` as sent at ``at`` (a datetime or unix seconds)."""
    timestamp = str(int(at.timestamp() if isinstance(at, datetime) else at))
    raw = body.encode() if isinstance(body, str) else body
    signature = base64.b64encode(_digest(secret, webhook_id, timestamp, raw)).decode()
    return {"webhook-id": webhook_id, "webhook-timestamp": timestamp, "webhook-signature": "v1," + signature}


def _v1_signatures(header: str) -> list[bytes]:
    found = []
    for item in header.split():
        version, _, value = item.partition(",")
        if version == "v1":
            try:
                found.append(base64.b64decode(value.strip(), validate=True))
            except (binascii.Error, ValueError):
                found.append(b"")  # compares unequal to any digest
    return found


def problem(*, secret: str, webhook_id: str, timestamp: str, signature: str, body: bytes) -> str | None:
    """Why ``signature`` (the ``webhook-signature`` header) does not sign ``body`` with the id and
    timestamp given, or None when one of its v1 signatures does. Every candidate is compared in
    constant time, so how many there are, not which matched, is all the timing tells."""
    candidates = _v1_signatures(signature)
    if not candidates:
        return "webhook-signature has no v1 signature"
    expected = _digest(secret, webhook_id, timestamp, body)
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return None if matched else "signature does not match"
