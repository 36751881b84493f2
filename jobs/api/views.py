"""Jobs API: thin views that parse, call one service or selector, and shape the answer."""

from __future__ import annotations

import time
from datetime import UTC

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from lambdasite.errors import ValidationFailed
from sandbox import RUNTIMES

from .. import selectors, services
from ..models import FINISHED, Job, Status
from ..runtimes import RUNTIME_INFO
from .serializers import (
    BatchSubmitSerializer,
    JobDetailSerializer,
    JobSerializer,
    JobSubmitSerializer,
    LogLineSerializer,
    LogPageSerializer,
    RuntimeSerializer,
)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def _errors(*statuses: int) -> dict:
    text = {
        400: "invalid input (the message names the field)",
        401: "missing, malformed or revoked API key",
        403: "key is read-only or tenant is suspended",
        404: "no such job for this tenant",
        409: "not allowed in the job's current state",
        413: "body, code or args over the size cap",
        422: "Idempotency-Key reused with a different body",
        429: "rate limited",
    }
    return {status: OpenApiResponse(ErrorSerializer, description=text[status]) for status in statuses}


class JobCursorPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


def _int_param(
    request: Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(
            f"{name}: must be an integer", details={"fields": {name: ["must be an integer"]}}
        ) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ValidationFailed(f"{name}: must be {bound}", details={"fields": {name: [f"must be {bound}"]}})
    return value


@extend_schema(
    methods=["POST"],
    operation_id="jobs_submit",
    summary="Submit a function to run",
    description=(
        "Returns 202 with the queued job. With `?wait=N` (at most WAIT_MAX_S) the answer is held until the job "
        "finishes or N seconds pass: 200 with the finished job, else the 202 body. With an `Idempotency-Key` "
        "header, repeating the same body within 24 h returns the first job (200) instead of a new one."
    ),
    parameters=[
        OpenApiParameter(
            "wait", OpenApiTypes.FLOAT, description="seconds to wait for the result (synchronous invoke)"
        ),
        OpenApiParameter(
            "Idempotency-Key", OpenApiTypes.STR, location=OpenApiParameter.HEADER, required=False
        ),
    ],
    request=JobSubmitSerializer,
    responses={200: JobDetailSerializer, 202: JobSerializer, **_errors(400, 401, 403, 413, 422, 429)},
    examples=[
        OpenApiExample(
            "Add two numbers (Python)",
            value={"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]},
            request_only=True,
        ),
        OpenApiExample(
            "Async wait (Node)",
            value={
                "runtime": "node",
                "code": "async function main(delay) {\n  await new Promise(r => setTimeout(r, delay));\n  return 'Completed';\n}",
                "args": [1000],
                "timeout_ms": 5000,
            },
            request_only=True,
        ),
    ],
)
@extend_schema(
    methods=["GET"],
    operation_id="jobs_list",
    summary="List this tenant's jobs, newest first",
    parameters=[
        OpenApiParameter(
            "status", OpenApiTypes.STR, description="comma-separated statuses, e.g. failed,timed_out"
        ),
        OpenApiParameter("runtime", OpenApiTypes.STR, enum=list(RUNTIMES)),
        OpenApiParameter("limit", OpenApiTypes.INT, description="page size, at most 200"),
        OpenApiParameter("cursor", OpenApiTypes.STR, description="opaque cursor from `next`/`previous`"),
    ],
    responses={200: JobSerializer(many=True), **_errors(400, 401, 403)},
)
@api_view(["GET", "POST"])
def jobs(request: Request) -> Response:
    tenant = request.user.tenant
    if request.method == "POST":
        _wait_param(request)  # validated before anything is written
        incoming = JobSubmitSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= 255):
            raise ValidationFailed(
                "Idempotency-Key: must be 1 to 255 characters",
                details={"fields": {"Idempotency-Key": ["1 to 255 characters"]}},
            )
        job, created = services.job_submit(
            tenant=tenant,
            api_key=request.auth,
            spec=services.JobSpec(**incoming.validated_data),
            idempotency_key=key,
        )
        if not created:
            return Response(JobDetailSerializer(job).data, status=200)
        body = JobSerializer(job).data
        return Response(body, status=202, headers={"Location": body["links"]["self"]})
    statuses = [s for s in request.query_params.get("status", "").split(",") if s]
    runtime = request.query_params.get("runtime") or None
    if runtime is not None and runtime not in RUNTIMES:
        raise ValidationFailed(
            f"runtime: unknown runtime {runtime!r}", details={"fields": {"runtime": ["unknown runtime"]}}
        )
    return _paginated(request, selectors.job_list(tenant=tenant, statuses=statuses, runtime=runtime))


def _paginated(request: Request, qs) -> Response:
    paginator = JobCursorPagination()
    try:
        page = paginator.paginate_queryset(qs, request)
    except drf_exceptions.NotFound:  # a forged or stale cursor is the client's error, not a missing resource
        raise ValidationFailed(
            "cursor: invalid cursor", details={"fields": {"cursor": ["invalid cursor"]}}
        ) from None
    return paginator.get_paginated_response(JobSerializer(page, many=True).data)


@extend_schema(
    methods=["GET"],
    operation_id="jobs_retrieve",
    summary="One job with its result, error and attempt history",
    responses={200: JobDetailSerializer, **_errors(401, 403, 404)},
)
@extend_schema(
    methods=["DELETE"],
    operation_id="jobs_delete",
    summary="Delete a finished job with its attempts and logs",
    responses={204: None, **_errors(401, 403, 404, 409)},
)
@api_view(["GET", "DELETE"])
def job_detail(request: Request, job_id: str) -> Response:
    job = selectors.job_get(tenant=request.user.tenant, job_id=job_id)
    if request.method == "DELETE":
        services.job_delete(job=job)
        return Response(status=204)
    return Response(JobDetailSerializer(job).data)


@extend_schema(
    operation_id="jobs_logs",
    summary="A job's output lines in order",
    parameters=[
        OpenApiParameter("after", OpenApiTypes.INT, description="only lines with a larger sequence number"),
        OpenApiParameter(
            "limit", OpenApiTypes.INT, description="at most this many lines (default 1000, max 5000)"
        ),
    ],
    responses={200: LogPageSerializer, **_errors(400, 401, 403, 404)},
)
@api_view(["GET"])
def job_logs(request: Request, job_id: str) -> Response:
    job = selectors.job_get(tenant=request.user.tenant, job_id=job_id)
    after = _int_param(request, "after", 0, minimum=0, maximum=2**31 - 1)
    limit = _int_param(request, "limit", 1000, minimum=1, maximum=5000)
    lines = selectors.job_logs(job=job, after=after, limit=limit)
    next_after = lines[-1].seq if lines else after
    complete = job.is_finished and len(lines) < limit
    return Response(
        {
            "job_id": job.id,
            "job_status": job.status,
            "lines": LogLineSerializer(lines, many=True).data,
            "next_after": next_after,
            "complete": complete,
        }
    )


@extend_schema(
    operation_id="runtimes_list",
    summary="Available runtimes with their defaults and this tenant's caps",
    responses={200: RuntimeSerializer(many=True), **_errors(401, 403)},
)
@api_view(["GET"])
def runtimes(request: Request) -> Response:
    quota = request.user.tenant.quota
    caps = {
        "max_timeout_ms": quota.max_timeout_ms,
        "max_memory_mb": quota.max_memory_mb,
        "max_retries": quota.max_retries_cap,
        "max_code_bytes": quota.max_code_bytes,
        "max_args_bytes": quota.max_args_bytes,
        "max_result_bytes": quota.max_result_bytes,
        "max_log_bytes": quota.max_log_bytes,
    }
    defaults = {
        "handler": "main",
        "timeout_ms": min(settings.JOB_DEFAULT_TIMEOUT_MS, quota.max_timeout_ms),
        "memory_mb": min(settings.JOB_DEFAULT_MEMORY_MB, quota.max_memory_mb),
        "max_retries": quota.default_max_retries,
    }
    data = [{"name": name, **RUNTIME_INFO[name], "defaults": defaults, "caps": caps} for name in RUNTIMES]
    return Response(RuntimeSerializer(data, many=True).data)


def _wait_param(request) -> float:
    raw = request.query_params.get("wait")
    if raw in (None, ""):
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (0 <= value <= settings.WAIT_MAX_S) or value != value:
        raise ValidationFailed(
            f"wait: must be a number of seconds between 0 and {settings.WAIT_MAX_S:g}",
            details={"fields": {"wait": [f"between 0 and {settings.WAIT_MAX_S:g}"]}},
        )
    return value


def _status_of(job_id) -> str | None:
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


def _finished_body(job_id, tenant) -> dict:
    return JobDetailSerializer(selectors.job_get(tenant=tenant, job_id=job_id)).data


_async_redis: dict = {}


def _redis_async():
    """One asyncio Redis client per event loop (the ASGI server runs one; tests make many)."""
    import asyncio

    import redis.asyncio

    from lambdasite.redis_client import redis_url

    loop = asyncio.get_running_loop()
    client = _async_redis.get(loop)
    if client is None:
        for old in [other for other in _async_redis if other.is_closed()]:
            del _async_redis[old]
        client = _async_redis[loop] = redis.asyncio.Redis.from_url(redis_url())
    return client


async def _wait_finished(job_id, seconds: float) -> bool:
    """Wait for the job's done notification. A job that finished before we subscribed has left
    its done flag in Redis; without flag or notification, PostgreSQL decides at the deadline."""
    from ..metrics import DONE_CHANNEL, DONE_KEY

    conn = _redis_async()
    pubsub = conn.pubsub()
    try:
        await pubsub.subscribe(DONE_CHANNEL.format(job_id))
        # finished before we listened? the flag is set with the notification, and costs no trip
        # through Django's sync thread (if Redis lost it, the wait ends with a database check)
        if await conn.exists(DONE_KEY.format(job_id)):
            return True
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, 1.0))
            if message is not None:
                return True
        return await sync_to_async(_status_of)(job_id) in FINISHED
    except Exception:  # noqa: BLE001 - Redis trouble: fall back to one last look at the database
        return await sync_to_async(_status_of)(job_id) in FINISHED
    finally:
        await pubsub.aclose()


def _release_connections() -> None:
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:  # (a test's wrapping transaction stays open)
            conn.close()


@csrf_exempt
async def jobs_endpoint(request):
    """POST/GET /api/v1/jobs. A ?wait on submit is awaited here, off Django's sync thread:
    the wait listens for the job's done notification instead of holding a thread."""
    response = await sync_to_async(jobs)(request)
    if request.method != "POST" or response.status_code != 202:
        return response
    try:
        wait = float(request.GET.get("wait") or 0)
    except ValueError:
        wait = 0.0
    if wait <= 0:
        return response
    job_id = response.data["id"]
    # give this request's database connection back to the pool for the wait (a waiting request
    # must not hold one of DB_POOL_MAX_SIZE connections for up to WAIT_MAX_S)
    await sync_to_async(_release_connections)()
    if await _wait_finished(job_id, min(wait, settings.WAIT_MAX_S)):
        tenant = response.renderer_context["request"].user.tenant
        response.data = await sync_to_async(_finished_body)(job_id, tenant)
        response.status_code = 200
        response._is_rendered = False
    return response


@extend_schema(
    operation_id="jobs_batch",
    summary="Submit up to 100 jobs at once (all validated before any is accepted)",
    request=BatchSubmitSerializer,
    responses={
        202: OpenApiResponse(description='{"ids": [...], "jobs": [...]} in request order'),
        **_errors(400, 401, 403, 413, 429),
    },
)
@api_view(["POST"])
def jobs_batch(request: Request) -> Response:
    incoming = BatchSubmitSerializer(data=request.data, context={"max": settings.BATCH_MAX_JOBS})
    incoming.is_valid(raise_exception=True)
    specs = [services.JobSpec(**item) for item in incoming.validated_data["jobs"]]
    jobs_ = services.job_submit_batch(tenant=request.user.tenant, api_key=request.auth, specs=specs)
    return Response(
        {"ids": [str(job.id) for job in jobs_], "jobs": JobSerializer(jobs_, many=True).data}, status=202
    )


@extend_schema(
    operation_id="jobs_cancel",
    summary="Cancel a job: a waiting job never runs, a running one is killed within ~1 s",
    request=None,
    responses={202: JobSerializer, **_errors(401, 403, 404, 409)},
)
@api_view(["POST"])
def job_cancel(request: Request, job_id: str) -> Response:
    job = services.job_cancel(job=selectors.job_get(tenant=request.user.tenant, job_id=job_id))
    return Response(JobSerializer(job).data, status=202)


@extend_schema(
    operation_id="jobs_retry",
    summary="Run a dead, failed, timed-out, killed or cancelled job again (a new attempt of the same job)",
    request=None,
    responses={202: JobSerializer, **_errors(401, 403, 404, 409)},
)
@api_view(["POST"])
def job_retry(request: Request, job_id: str) -> Response:
    job = services.job_requeue(job=selectors.job_get(tenant=request.user.tenant, job_id=job_id))
    return Response(JobSerializer(job).data, status=202)


@extend_schema(
    operation_id="dead_letters_list",
    summary="Jobs whose retries are exhausted (the dead-letter queue), newest first",
    parameters=[OpenApiParameter("limit", OpenApiTypes.INT), OpenApiParameter("cursor", OpenApiTypes.STR)],
    responses={200: JobSerializer(many=True), **_errors(401, 403)},
)
@api_view(["GET"])
def dead_letters(request: Request) -> Response:
    return _paginated(request, selectors.job_list(tenant=request.user.tenant, statuses=[Status.DEAD]))


# the schema generator describes the DRF view behind the async wrapper
jobs_endpoint.cls = jobs.cls
jobs_endpoint.initkwargs = jobs.initkwargs


@extend_schema(
    operation_id="usage_retrieve",
    summary="This billing period's jobs, GB-seconds used and left, estimated cost, concurrency and every limit",
    responses={
        200: OpenApiResponse(description="usage of the current calendar month (UTC)"),
        **_errors(401, 403),
    },
)
@api_view(["GET"])
def usage(request: Request) -> Response:
    return Response(selectors.tenant_usage(tenant=request.user.tenant))


@extend_schema(
    operation_id="stats_retrieve",
    summary="Counts by status and runtime, success rate, p50/p95 run time and queue wait, jobs per minute",
    parameters=[
        OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601; default: 24 hours ago")
    ],
    responses={200: OpenApiResponse(description="statistics over the window"), **_errors(400, 401, 403)},
)
@api_view(["GET"])
def stats(request: Request) -> Response:
    from datetime import timedelta

    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    raw = request.query_params.get("since")
    now = timezone.now()
    since = now - timedelta(hours=24)
    if raw:
        try:
            parsed = parse_datetime(raw)
        except ValueError:
            parsed = None
        if parsed is None:
            raise ValidationFailed(
                "since: must be an ISO 8601 date-time", details={"fields": {"since": ["ISO 8601 date-time"]}}
            )
        try:
            since = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(
                UTC
            )
        except (OverflowError, ValueError):
            raise ValidationFailed(
                "since: out of range", details={"fields": {"since": ["out of range"]}}
            ) from None
        if since > now:
            raise ValidationFailed(
                "since: must be in the past", details={"fields": {"since": ["in the past"]}}
            )
    return Response(selectors.tenant_stats(tenant=request.user.tenant, since=since, now=now))
