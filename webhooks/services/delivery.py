"""Deliveries: events fanned out to endpoints (and callback URLs), sent with signatures, retried with
backoff for about a day, every attempt recorded.

At least once, across crashes of any process: an event is a row committed with the outcome that
caused it; fan-out turns it into one stored body (``Event``) and delivery rows referring to it, and
deletes it, in one transaction; a delivery is claimed with a lease (``locked_until``) and only marked
done after the receiver answered 2xx, so a delivery worker that dies mid-send leaves a lease that
expires and the delivery is sent again, with the same ``webhook-id`` (receivers deduplicate on it).
Anything that goes wrong during an attempt, whatever raised it, is recorded as a failed attempt with
its retry: no delivery can stay first in line forever.

Claiming is fair between tenants: each claim takes the tenants' due deliveries in turns (every
tenant's oldest first, then every tenant's second, ...), and a tenant with
``WEBHOOK_TENANT_IN_FLIGHT`` deliveries being sent (by any delivery process) gets no more until one
ends."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobs.models import Job
from jobs.rendering import job_body
from lambdasite import standard_webhooks

from ..exceptions import DeliveryNotFound, RedeliveryLimit, RedeliveryPending
from ..models import CallbackSecret, Delivery, DeliveryAttempt, Event, OutboxEvent, WebhookEndpoint
from ..wording import plain_error
from .http import Answer, post, text
from .throttle import webhook_write_admit

log = logging.getLogger("lambdasite.webhooks")
_CLAIM_LOCK = 0x77686B63  # claims are serialised (they take milliseconds) so the per-tenant cap is exact
# Tenants with pending deliveries (a skip scan of delivery_tenant_due), then for each tenant its
# deliveries in flight and its oldest due ones; a delivery's turn is its rank within its tenant after
# those in flight, and the claim takes turns in order: round robin between tenants.
_CLAIM_SQL = """
WITH RECURSIVE tenants(tenant_id) AS (
    (SELECT tenant_id FROM webhooks_delivery WHERE status = 'pending' ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT d.tenant_id FROM webhooks_delivery d
            WHERE d.status = 'pending' AND d.tenant_id > t.tenant_id ORDER BY d.tenant_id LIMIT 1)
    FROM tenants t WHERE t.tenant_id IS NOT NULL
), turns AS (
    SELECT due.id, due.next_attempt_at, busy.n + due.rank AS turn
    FROM tenants t
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM webhooks_delivery
        WHERE tenant_id = t.tenant_id AND status = 'pending' AND locked_until >= %(now)s
    ) busy
    CROSS JOIN LATERAL (
        SELECT id, next_attempt_at, row_number() OVER (ORDER BY next_attempt_at, id) AS rank
        FROM webhooks_delivery
        WHERE tenant_id = t.tenant_id AND status = 'pending' AND next_attempt_at <= %(now)s
            AND (locked_until IS NULL OR locked_until < %(now)s)
        ORDER BY next_attempt_at, id
        LIMIT GREATEST(%(per_tenant)s - busy.n, 0)
    ) due
    WHERE t.tenant_id IS NOT NULL
)
UPDATE webhooks_delivery SET locked_until = %(lease)s, attempts = attempts + 1
WHERE id IN (SELECT id FROM turns ORDER BY turn, next_attempt_at LIMIT %(limit)s)
    AND status = 'pending' AND (locked_until IS NULL OR locked_until < %(now)s)
RETURNING id
"""


TEST_EVENT = "webhook.test"  # "Send test event" (services/ping.py): tried once, never retried


def retry_delays() -> list[float]:
    return [float(x) for x in settings.WEBHOOK_RETRY_DELAYS_S.split(",") if x.strip()]


# -- fan-out ----------------------------------------------------------------------


def _body(event: OutboxEvent) -> str | None:
    if event.job_id is not None:
        job = Job.objects.filter(pk=event.job_id).first()
        if job is None:
            return None  # deleted before its event went out
        data = job_body(job)  # the job as the API shows it (what JobSerializer renders)
    else:
        data = event.data
    return json.dumps({"type": event.type, "timestamp": event.created_at.isoformat(), "data": data})


def _wants(endpoint: WebhookEndpoint, event: OutboxEvent) -> bool:
    if event.type not in endpoint.events:
        return False
    return not (
        endpoint.function_id and event.job_id is not None and endpoint.function_id != event.function_id
    )


def fanout(*, limit: int = 200) -> int:
    """Turn outbox events into deliveries (one per matching endpoint, plus a job's callback URL), all
    referring to the event's one stored body."""
    made = 0
    now = timezone.now()
    with transaction.atomic():
        events = list(OutboxEvent.objects.select_for_update(skip_locked=True).order_by("id")[:limit])
        for event in events:
            endpoints = WebhookEndpoint.objects.filter(tenant_id=event.tenant_id, enabled=True)
            targets = [(e.url, e) for e in endpoints if _wants(e, event)]
            if event.callback_url:
                targets.append((event.callback_url, None))
            body = _body(event) if targets else None
            if body is None:
                continue
            stored = Event.objects.create(
                tenant_id=event.tenant_id, type=event.type, job_id=event.job_id, body=body
            )
            Delivery.objects.bulk_create(
                _new(stored, url, now, endpoint=endpoint) for url, endpoint in targets
            )
            made += len(targets)
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).delete()
    return made


def _new(event: Event, url: str, now: datetime, endpoint=None, webhook_id: str = "", **fields) -> Delivery:
    return Delivery(
        tenant_id=event.tenant_id,
        endpoint=endpoint,
        url=url,
        webhook_id=webhook_id or f"msg_{uuid.uuid4().hex}",
        type=event.type,
        job_id=event.job_id,
        event=event,
        next_attempt_at=now,
        **fields,
    )


# -- sending ------------------------------------------------------------------------


def lease_s() -> float:
    """Long enough for one attempt: the name's lookup, then the attempt's deadline."""
    return settings.WEBHOOK_RESOLVE_TIMEOUT_S + settings.WEBHOOK_DEADLINE_S + 30.0


def claim(*, limit: int, now: datetime | None = None, per_tenant: int | None = None) -> list:
    """Take up to ``limit`` due deliveries under a lease long enough for one attempt, in turns between
    tenants, none of a tenant that has ``per_tenant`` in flight."""
    if limit <= 0:
        return []
    now = now or timezone.now()
    per_tenant = settings.WEBHOOK_TENANT_IN_FLIGHT if per_tenant is None else per_tenant
    params = {
        "lease": now + timedelta(seconds=lease_s()),
        "now": now,
        "limit": limit,
        "per_tenant": per_tenant,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CLAIM_LOCK])
        cursor.execute(_CLAIM_SQL, params)
        return [row[0] for row in cursor.fetchall()]


def _secret(delivery: Delivery) -> str:
    if delivery.endpoint_id:
        return delivery.endpoint.secret
    found = (
        CallbackSecret.objects.filter(tenant_id=delivery.tenant_id).values_list("secret", flat=True).first()
    )
    if found is None:
        found, _ = CallbackSecret.objects.get_or_create(
            tenant_id=delivery.tenant_id, defaults={"secret": standard_webhooks.new_secret()}
        )
        found = found.secret
    return found


def _attempt(delivery: Delivery, started: datetime) -> Answer:
    """Sign and send; anything raised on the way is this attempt's error, never the caller's."""
    try:
        body = delivery.event.body
        secret = _secret(delivery)
        headers = standard_webhooks.headers(
            secret=secret, webhook_id=delivery.webhook_id, body=body, at=started
        )
        return post(delivery.url, body.encode(), headers, owner=delivery.tenant_id)
    except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt and retried
        log.exception("webhook attempt raised", extra={"delivery": str(delivery.pk)})
        return Answer(None, text(f"{type(exc).__name__}: {exc}"), "", None)


def send(delivery_id, *, now: datetime | None = None) -> Delivery | None:
    """One attempt of a claimed delivery; records it and decides what comes next."""
    delivery = Delivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != Delivery.Status.PENDING:
        return delivery
    if delivery.endpoint_id and not delivery.endpoint.enabled:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.FAILED, last_error="the endpoint is disabled", locked_until=None
        )
        return delivery
    started = timezone.now()
    t0 = time.monotonic()
    if delivery.attempts > len(retry_delays()) + 1:  # claimed again and again, never recorded
        answer = Answer(None, "gave up: earlier attempts ended without a record", "", None)
    else:
        answer = _attempt(delivery, started)
    latency = (time.monotonic() - t0) * 1000.0
    code, error = answer.status_code, answer.error
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
            error=text(error),
            response=answer.response,
        )
        _settle(
            delivery, ok=ok, code=code, error=error, retry_after=answer.retry_after, now=now or timezone.now()
        )
    return Delivery.objects.get(pk=delivery.pk)


def _settle(delivery: Delivery, *, ok: bool, code, error: str, retry_after, now: datetime) -> None:
    fields = {"last_status_code": code, "last_error": text(error), "locked_until": None}
    endpoint = delivery.endpoint
    if ok:
        fields.update(status=Delivery.Status.SUCCEEDED, delivered_at=now, next_attempt_at=None)
        if endpoint is not None and endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
    elif delivery.type == TEST_EVENT:  # a test says how the endpoint answers now: no retries, no strike
        fields.update(status=Delivery.Status.FAILED, next_attempt_at=None)
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
        f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC (last: {plain_error(error)[:200]})"
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason=reason[:500])
    Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.FAILED, last_error="the endpoint was disabled", next_attempt_at=None
    )
    log.warning(
        "webhook endpoint disabled", extra={"event": "endpoint_disabled", "endpoint": str(endpoint.pk)}
    )


@transaction.atomic
def redeliver(*, delivery: Delivery) -> Delivery:
    """Send a delivery again, as a new delivery with the same ``webhook-id`` and event body. Bounded:
    refused (409) while a redelivery of the same message is pending, and after
    ``WEBHOOK_MAX_REDELIVERIES`` of it; a tenant's webhook writes are rate-limited (429)."""
    webhook_write_admit(tenant_id=delivery.tenant_id)
    message = Delivery.objects.filter(tenant_id=delivery.tenant_id, webhook_id=delivery.webhook_id)
    locked = set(message.select_for_update().values_list("pk", flat=True))  # one redelivery at a time
    if delivery.pk not in locked:
        raise DeliveryNotFound("no such delivery")  # purged meanwhile, with its event body
    again = message.filter(redelivery=True)
    if again.filter(status=Delivery.Status.PENDING).exists():
        raise RedeliveryPending("a redelivery of this message is still pending; wait for its outcome")
    cap = settings.WEBHOOK_MAX_REDELIVERIES
    if again.count() >= cap:
        raise RedeliveryLimit(f"this message was redelivered {cap} times, the limit", details={"limit": cap})
    url = delivery.endpoint.url if delivery.endpoint_id else delivery.url
    fresh = _new(
        delivery.event,
        url,
        timezone.now(),
        endpoint=delivery.endpoint,
        webhook_id=delivery.webhook_id,
        redelivery=True,
    )
    fresh.save(force_insert=True)
    return fresh
