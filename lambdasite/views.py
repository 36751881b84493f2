"""Site-level views: landing page, liveness, readiness and the Prometheus endpoint."""

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
    """Every dependency a job needs: database, Redis, Docker engine, a live worker, the reconciler."""
    checks = {
        name: _check(fn)
        for name, fn in READINESS_CHECKS.items()
        if name != "docker" or settings.READYZ_CHECK_DOCKER
    }
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
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


def _docker():
    import docker

    return {"version": docker.from_env(timeout=3).version().get("Version")}


def _workers():
    from rq import Worker

    count = Worker.count(connection=get_redis())
    if count < 1:
        raise NotReady("no live worker")
    return {"count": count}


def _reconciler():
    from jobs.services.reconcile import heartbeat_age_s

    age = heartbeat_age_s()
    if age is None:
        raise NotReady("no reconciler heartbeat")
    if age > settings.READYZ_RECONCILER_MAX_AGE_S:
        raise NotReady(f"last heartbeat {age:.0f} s ago")
    return {"age_s": round(age, 1)}


READINESS_CHECKS = {
    "database": _database,
    "redis": _redis,
    "docker": _docker,
    "workers": _workers,
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

    from .errors import json_error

    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return json_error(401, "unauthenticated", "metrics need the bearer token")
    elif not _from_loopback(request):
        return json_error(403, "forbidden", "set METRICS_TOKEN to read metrics from another host")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
