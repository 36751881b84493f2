"""Site-level views: landing page, liveness, readiness and the Prometheus endpoint."""
from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from lambdasite.redis_client import get_redis


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        from django.shortcuts import redirect

        return redirect("dashboard:overview")
    return render(request, "home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; nothing else is checked."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Every dependency a job needs: database, Redis, Docker engine, a live worker, the reconciler's heartbeat."""
    checks = {name: _check(fn) for name, fn in READINESS_CHECKS.items() if name != "docker" or settings.READYZ_CHECK_DOCKER}
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


def _check(fn) -> dict:
    started = time.monotonic()
    try:
        detail = fn()
        result = {"ok": True}
        if detail is not None:
            result["detail"] = detail
    except Exception as exc:  # noqa: BLE001 - any failure is the check's answer
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
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
        raise RuntimeError("no live worker")
    return {"count": count}


def _reconciler():
    from jobs.management.commands.scheduler import HEARTBEAT_KEY

    beat = get_redis().get(HEARTBEAT_KEY)
    if beat is None:
        raise RuntimeError("no reconciler heartbeat")
    age = time.time() - float(beat)
    if age > settings.READYZ_RECONCILER_MAX_AGE_S:
        raise RuntimeError(f"last heartbeat {age:.0f} s ago")
    return {"age_s": round(age, 1)}


READINESS_CHECKS = {
    "database": _database,
    "redis": _redis,
    "docker": _docker,
    "workers": _workers,
    "reconciler": _reconciler,
}


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; with METRICS_TOKEN set, only `Authorization: Bearer <token>` may read it."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JsonResponse({"error": {"code": "unauthenticated", "message": "metrics need the bearer token", "details": {}}}, status=401)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
