"""Checking a request's HMAC signature, per provider: pure functions of the headers, the raw body,
the key and the time (injected), before anything is spent on the request.

Every comparison of a secret-derived value is ``hmac.compare_digest`` (constant time). A scheme with
a timestamp in what it signs refuses one further than ``tolerance`` seconds from now, in either
direction (a captured request cannot be replayed later, nor one dated ahead be kept for later).

- ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(key, body)>``; delivery id
  ``X-GitHub-Delivery``.
- ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(key, "t.body")>`` (several ``v1`` during
  a secret's rotation: any may match); the delivery id is the event's ``id`` in the JSON body.
- ``slack``: ``X-Slack-Signature: v0=<hex HMAC-SHA256(key, "v0:ts:body")>`` with
  ``X-Slack-Request-Timestamp``; the delivery id is the body's ``event_id`` (Events API), if any.
- ``standard-webhooks``: ``webhook-signature: v1,<base64 HMAC-SHA256(key, "id.ts.body")>`` (several,
  space-separated), ``webhook-id`` (the delivery id) and ``webhook-timestamp``; a ``whsec_`` key is
  base64 (as the spec says), any other is used as its bytes. The scheme is
  lambdasite/standard_webhooks.py, which also signs the platform's own webhooks.
- ``custom``: a header holding ``prefix + encode(HMAC-<algorithm>(key, body))``, algorithm sha256, sha1
  or sha512, encoding hex or base64."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from lambdasite import standard_webhooks

PRESETS = ("github", "stripe", "slack", "standard-webhooks", "custom")
ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}
ENCODINGS = ("hex", "base64")
MAX_SIGNATURE_HEADER = 4096  # longer is refused before any parsing


class Refused(Exception):
    """Not verified. ``expired``: the signature may be right, but its timestamp is out of the window."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


@dataclass(frozen=True)
class Scheme:
    """A route's hmac settings: the preset, and for ``custom`` its header, algorithm, encoding, prefix."""

    preset: str
    header: str = ""
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""


Headers = Mapping[str, str]  # lower-case names -> the first value


def verify(
    scheme: Scheme, key: str, headers: Headers, body: bytes, *, now: float, tolerance: float = 300
) -> str | None:
    """Raise ``Refused`` unless ``body`` and ``headers`` carry a valid signature by ``key``; -> the
    delivery id the scheme names (None: it names none)."""
    check = _CHECKS[scheme.preset]
    return check(scheme, key.encode(), headers, body, now, tolerance)


def _header(headers: Headers, name: str) -> str:
    value = headers.get(name, "")
    if not value:
        raise Refused(f"missing {name} header")
    if len(value) > MAX_SIGNATURE_HEADER:
        raise Refused(f"{name} header too long")
    return value.strip()


def _digest(key: bytes, message: bytes, algorithm=hashlib.sha256) -> bytes:
    return hmac.new(key, message, algorithm).digest()


def _same(expected: bytes, candidates) -> bool:
    """Whether any candidate equals ``expected``; every candidate is compared in constant time."""
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(expected, candidate)
    return found


def _fresh(timestamp: str, now: float, tolerance: float) -> None:
    try:
        at = int(timestamp)
    except ValueError:
        raise Refused("timestamp is not a number") from None
    if abs(now - at) > tolerance:
        raise Refused(f"timestamp is more than {tolerance:g} s from now", expired=True)


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""  # compares unequal to any digest


def _github(scheme, key, headers, body, now, tolerance) -> str | None:
    signature = _header(headers, "x-hub-signature-256")
    if not signature.startswith("sha256="):
        raise Refused("X-Hub-Signature-256 must start with sha256=")
    if not _same(_digest(key, body), [_hex(signature[7:])]):
        raise Refused("signature does not match")
    return headers.get("x-github-delivery") or None


def _stripe(scheme, key, headers, body, now, tolerance) -> str | None:
    fields = [item.partition("=") for item in _header(headers, "stripe-signature").split(",")]
    timestamps = [value.strip() for name, _, value in fields if name.strip() == "t"]
    signatures = [_hex(value.strip()) for name, _, value in fields if name.strip() == "v1"]
    if len(timestamps) != 1 or not signatures:
        raise Refused("Stripe-Signature needs t= and v1=")
    expected = _digest(key, timestamps[0].encode() + b"." + body)
    if not _same(expected, signatures):
        raise Refused("signature does not match")
    _fresh(timestamps[0], now, tolerance)  # after the signature: only a signed timestamp is judged
    return _json_field(body, "id")


def _slack(scheme, key, headers, body, now, tolerance) -> str | None:
    signature = _header(headers, "x-slack-signature")
    timestamp = _header(headers, "x-slack-request-timestamp")
    if not signature.startswith("v0="):
        raise Refused("X-Slack-Signature must start with v0=")
    expected = _digest(key, b"v0:" + timestamp.encode() + b":" + body)
    if not _same(expected, [_hex(signature[3:])]):
        raise Refused("signature does not match")
    _fresh(timestamp, now, tolerance)
    return _json_field(body, "event_id")


def _standard(scheme, key, headers, body, now, tolerance) -> str | None:
    message_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")
    secret = key.decode()  # the scheme's own module takes the secret as set: it decodes a whsec_ key
    problem = standard_webhooks.problem(
        secret=secret, webhook_id=message_id, timestamp=timestamp, signature=signature, body=body
    )
    if problem is not None:
        raise Refused(problem)
    _fresh(timestamp, now, tolerance)
    return message_id


def _custom(scheme, key, headers, body, now, tolerance) -> str | None:
    value = _header(headers, scheme.header.lower())
    if scheme.prefix:
        if not value.startswith(scheme.prefix):
            raise Refused(f"{scheme.header} must start with {scheme.prefix}")
        value = value[len(scheme.prefix) :]
    presented = _hex(value) if scheme.encoding == "hex" else _b64(value)
    if not _same(_digest(key, body, ALGORITHMS[scheme.algorithm]), [presented]):
        raise Refused("signature does not match")
    return None


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _json_field(body: bytes, name: str) -> str | None:
    """A string field at the top of a JSON object body (read only once its signature is checked)."""
    try:
        value = json.loads(body).get(name)
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, str) and value else None


_CHECKS = {
    "github": _github,
    "stripe": _stripe,
    "slack": _slack,
    "standard-webhooks": _standard,
    "custom": _custom,
}


# signing, as each provider does: what the tests, the README's examples and the benchmark send


def sign(scheme: Scheme, key: str, body: bytes, *, at: int, delivery_id: str = "") -> dict[str, str]:
    """The headers a provider using ``scheme`` would send with ``body`` at unix time ``at``."""
    raw = key.encode()
    if scheme.preset == "github":
        return {
            "X-Hub-Signature-256": "sha256=" + _digest(raw, body).hex(),
            **({"X-GitHub-Delivery": delivery_id} if delivery_id else {}),
        }
    if scheme.preset == "stripe":
        return {"Stripe-Signature": f"t={at},v1=" + _digest(raw, f"{at}.".encode() + body).hex()}
    if scheme.preset == "slack":
        signature = "v0=" + _digest(raw, f"v0:{at}:".encode() + body).hex()
        return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(at)}
    if scheme.preset == "standard-webhooks":
        return standard_webhooks.headers(secret=key, webhook_id=delivery_id, body=body, at=at)
    digest = _digest(raw, body, ALGORITHMS[scheme.algorithm])
    encoded = digest.hex() if scheme.encoding == "hex" else base64.b64encode(digest).decode()
    return {scheme.header: scheme.prefix + encoded}
