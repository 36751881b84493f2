"""Deliveries: events fanned out to endpoints (and callback URLs), sent with signatures, retried with
backoff for about a day, every attempt recorded.

At least once, across crashes of any process: an event is a row committed with the outcome that
caused it; fan-out turns it into delivery rows and deletes it in one transaction; a delivery is
claimed with a lease (``locked_until``) and only marked done after the receiver answered 2xx, so a
delivery worker that dies mid-send leaves a lease that expires and the delivery is sent again, with
the same ``webhook-id`` (receivers deduplicate on it)."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobs.api.serializers import JobSerializer
from jobs.models import Job

from .. import signing, ssrf
from ..models import CallbackSecret, Delivery, DeliveryAttempt, OutboxEvent, WebhookEndpoint

log = logging.getLogger("lambdasite.webhooks")
MAX_RETRY_AFTER_S = 43200.0
_CLAIM_SQL = """
UPDATE webhooks_delivery SET locked_until = %(lease)s, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM webhooks_delivery
    WHERE status = 'pending' AND next_attempt_at <= %(now)s
        AND (locked_until IS NULL OR locked_until < %(now)s)
    ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


def retry_delays() -> list[float]:
    return [float(x) for x in settings.WEBHOOK_RETRY_DELAYS_S.split(",") if x.strip()]


# -- fan-out ----------------------------------------------------------------------


def _body(event: OutboxEvent) -> str | None:
    if event.job_id is not None:
        job = Job.objects.filter(pk=event.job_id).first()
        if job is None:
            return None  # deleted before its event went out
        data = JobSerializer(job).data
    else:
        data = event.data
    return json.dumps({"type": event.type, "timestamp": event.created_at.isoformat(), "data": data})


def fanout(*, limit: int = 200) -> int:
    """Turn outbox events into deliveries (one per matching endpoint, plus a job's callback URL)."""
    made = 0
    now = timezone.now()
    with transaction.atomic():
        events = list(OutboxEvent.objects.select_for_update(skip_locked=True).order_by("id")[:limit])
        for event in events:
            body = _body(event)
            if body is None:
                continue
            endpoints = WebhookEndpoint.objects.filter(tenant_id=event.tenant_id, enabled=True)
            for endpoint in endpoints:
                if event.type not in endpoint.events:
                    continue
                if (
                    endpoint.function_id
                    and event.job_id is not None
                    and endpoint.function_id != event.function_id
                ):
                    continue
                _new(event, endpoint.url, body, now, endpoint=endpoint)
                made += 1
            if event.callback_url:
                _new(event, event.callback_url, body, now)
                made += 1
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).delete()
    return made


def _new(event: OutboxEvent, url: str, body: str, now: datetime, endpoint=None) -> Delivery:
    return Delivery.objects.create(
        tenant_id=event.tenant_id,
        endpoint=endpoint,
        url=url,
        webhook_id=f"msg_{uuid.uuid4().hex}",
        type=event.type,
        job_id=event.job_id,
        body=body,
        next_attempt_at=now,
    )


# -- sending ------------------------------------------------------------------------


def claim(*, limit: int, now: datetime | None = None) -> list:
    """Take up to ``limit`` due deliveries under a lease long enough for one attempt."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_S + 30)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"lease": lease, "now": now, "limit": limit})
        return [row[0] for row in cursor.fetchall()]


def _secret(delivery: Delivery) -> str:
    if delivery.endpoint_id:
        return delivery.endpoint.secret
    found = (
        CallbackSecret.objects.filter(tenant_id=delivery.tenant_id).values_list("secret", flat=True).first()
    )
    if found is None:
        found, _ = CallbackSecret.objects.get_or_create(
            tenant_id=delivery.tenant_id, defaults={"secret": signing.new_secret()}
        )
        found = found.secret
    return found


def post(url: str, body: str, headers: dict) -> tuple[int | None, str, str, float | None]:
    """POST to the address the name resolved to and was checked at (no redirects, one timeout).
    -> (status code or None, error, the start of the answer, Retry-After seconds or None)"""
    try:
        addresses = ssrf.resolve(url)
    except ssrf.Refused as exc:
        return None, f"refused: {exc}", "", None
    scheme, host, port = ssrf.parse(url)
    default_port = port == (443 if scheme == "https" else 80)
    # connect to the address that was checked (a second lookup could answer differently), naming the
    # host in the Host header and, for TLS, in SNI and the certificate check
    target = httpx.URL(url).copy_with(host=addresses[0])
    request_headers = {
        "content-type": "application/json",
        "user-agent": "Lambdasite-Webhooks/1",
        "host": host if default_port else f"{host}:{port}",
        **headers,
    }
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    try:
        with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT_S, follow_redirects=False) as client:
            with client.stream(
                "POST", target, content=body.encode(), headers=request_headers, extensions=extensions
            ) as response:
                start = b""
                for chunk in response.iter_bytes():
                    start += chunk
                    if len(start) >= 500:
                        break
                return (
                    response.status_code,
                    "",
                    start[:500].decode("utf-8", "replace"),
                    _retry_after(response.headers.get("retry-after")),
                )
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], "", None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return min(max((when - timezone.now()).total_seconds(), 0.0), MAX_RETRY_AFTER_S)
    except (TypeError, ValueError):
        return None


def send(delivery_id, *, now: datetime | None = None) -> Delivery | None:
    """One attempt of a claimed delivery; records it and decides what comes next."""
    delivery = Delivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != Delivery.Status.PENDING:
        return delivery
    if delivery.endpoint_id and not delivery.endpoint.enabled:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.FAILED, last_error="the endpoint is disabled", locked_until=None
        )
        return delivery
    started = timezone.now()
    t0 = time.monotonic()
    body = delivery.body
    headers = signing.headers(secret=_secret(delivery), webhook_id=delivery.webhook_id, body=body, at=started)
    code, error, answer, retry_after = post(delivery.url, body, headers)
    latency = (time.monotonic() - t0) * 1000.0
    ok = code is not None and 200 <= code < 300
    if code is not None and not ok:
        error = f"the receiver answered {code}"
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started_at=started,
            status_code=code,
            latency_ms=latency,
            error=error[:500],
            response=answer,
        )
        _settle(delivery, ok=ok, code=code, error=error, retry_after=retry_after, now=now or timezone.now())
    return Delivery.objects.get(pk=delivery.pk)


def _settle(delivery: Delivery, *, ok: bool, code, error: str, retry_after, now: datetime) -> None:
    fields = {"last_status_code": code, "last_error": error[:500], "locked_until": None}
    endpoint = delivery.endpoint
    if ok:
        fields.update(status=Delivery.Status.SUCCEEDED, delivered_at=now, next_attempt_at=None)
        if endpoint is not None and endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
    else:
        delays = retry_delays()
        if delivery.attempts <= len(delays):
            delay = delays[delivery.attempts - 1] * random.uniform(0.8, 1.2)
            if retry_after is not None:
                delay = max(delay, retry_after)
            fields["next_attempt_at"] = now + timedelta(seconds=delay)
        else:
            fields.update(status=Delivery.Status.FAILED, next_attempt_at=None)
        if endpoint is not None:
            _endpoint_failed(endpoint, error, now)
    Delivery.objects.filter(pk=delivery.pk).update(**fields)


def _endpoint_failed(endpoint: WebhookEndpoint, error: str, now: datetime) -> None:
    """An endpoint failing without a single success for WEBHOOK_DISABLE_AFTER_S is disabled."""
    if endpoint.failing_since is None:
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
        return
    if (now - endpoint.failing_since).total_seconds() < settings.WEBHOOK_DISABLE_AFTER_S:
        return
    reason = (
        f"disabled {now:%Y-%m-%d %H:%M} UTC: every delivery failed since "
        f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC (last: {error[:200]})"
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason=reason[:500])
    Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.FAILED, last_error="the endpoint was disabled", next_attempt_at=None
    )
    log.warning(
        "webhook endpoint disabled", extra={"event": "endpoint_disabled", "endpoint": str(endpoint.pk)}
    )


def redeliver(*, delivery: Delivery) -> Delivery:
    """Send a delivery again, as a new delivery with the same ``webhook-id`` and body."""
    url = delivery.endpoint.url if delivery.endpoint_id else delivery.url
    return Delivery.objects.create(
        tenant_id=delivery.tenant_id,
        endpoint=delivery.endpoint,
        url=url,
        webhook_id=delivery.webhook_id,
        type=delivery.type,
        job_id=delivery.job_id,
        body=delivery.body,
        next_attempt_at=timezone.now(),
    )
