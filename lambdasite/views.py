"""Site-level views: landing page, liveness, readiness, the fleet's health and the Prometheus endpoint.

Readiness (``/readyz``) is this web process's own: can it serve (PostgreSQL, Redis)? It never
looks at workers or the reconciler, so no trouble elsewhere in the fleet (workers down, Redis
flushed) takes web pods out of a load balancer. The fleet's health (``/healthz/fleet``: live job
and build workers, the reconciler's heartbeat) is reported separately, for people and alerts,
never as a probe."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from lambdasite.redis_client import get_redis

log = logging.getLogger("lambdasite.ops")


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        from django.shortcuts import redirect

        return redirect("dashboard:overview")
    return render(request, "home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; nothing else is checked."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """What this process needs to serve: the database and Redis. 200 when both answer, else 503."""
    return _report(READINESS_CHECKS, ok="ok", failed="unavailable")


def fleet(request: HttpRequest) -> JsonResponse:
    """The fleet's health: live job workers, live build workers, the reconciler's heartbeat; 200 when
    all are there, else 503. Not a probe (no process should restart or leave a load balancer over
    another's trouble); behind the same guard as /metrics: worker counts are nobody else's business."""
    refused = _metrics_refusal(request)
    if refused is not None:
        return refused
    return _report(FLEET_CHECKS, ok="ok", failed="degraded")


def _report(checks: dict, *, ok: str, failed: str) -> JsonResponse:
    results = {name: _check(fn) for name, fn in checks.items()}
    healthy = all(result["ok"] for result in results.values())
    return JsonResponse(
        {"status": ok if healthy else failed, "checks": results}, status=200 if healthy else 503
    )


class NotReady(Exception):
    """A readiness problem described in our own words (safe to show to anyone)."""


def _check(fn) -> dict:
    """Run one check. Only our own NotReady messages are shown: an exception from a driver can
    carry host names, addresses or credentials, so it is logged, never echoed."""
    started = time.monotonic()
    try:
        detail = fn()
        result = {"ok": True}
        if detail is not None:
            result["detail"] = detail
    except NotReady as exc:
        result = {"ok": False, "error": str(exc)}
    except Exception:  # noqa: BLE001 - any failure is the check's answer
        log.warning(
            "readiness check %s failed", fn.__name__.strip("_"), exc_info=True, extra={"event": "not_ready"}
        )
        result = {"ok": False, "error": "unavailable"}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def _database():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis():
    get_redis().ping()


def _live(role: str, what: str):
    def check():
        from jobs.metrics import workers_alive

        count = workers_alive().get(role, 0)
        if count < 1:
            raise NotReady(f"no live {what}")
        return {"count": count}

    check.__name__ = f"_{role}_workers"
    return check


def _reconciler():
    from jobs.metrics import reconciler_age_s

    age = reconciler_age_s()
    if age is None:
        raise NotReady("no reconciler heartbeat")
    if age > settings.READYZ_RECONCILER_MAX_AGE_S:
        raise NotReady(f"last heartbeat {age:.0f} s ago")
    return {"age_s": round(age, 1)}


READINESS_CHECKS = {"database": _database, "redis": _redis}
FLEET_CHECKS = {
    "workers": _live("jobs", "job worker"),
    "build_workers": _live("builds", "build worker"),
    "reconciler": _reconciler,
}


def _from_loopback(request: HttpRequest) -> bool:
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition. With METRICS_TOKEN set, only `Authorization: Bearer <token>` may read
    it; without one, only clients on this machine (loopback) may: tenant names, volumes and
    worker counts are nobody else's business."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    refused = _metrics_refusal(request)
    if refused is not None:
        return refused
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def _metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """None if this client may read the metrics (and the fleet's health), else the refusal."""
    from .errors import json_error

    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return json_error(401, "unauthenticated", "metrics need the bearer token")
    elif not _from_loopback(request):
        return json_error(403, "forbidden", "set METRICS_TOKEN to read metrics from another host")
    return None
