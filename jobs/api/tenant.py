"""The tenant's view of its account through the API: runtimes with its caps, usage, statistics."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from lambdasite.api.schema import errors
from sandbox import RUNTIMES

from .. import selectors
from ..runtimes import RUNTIME_INFO
from .filters import StatsFilter
from .serializers import RuntimeSerializer


@extend_schema(
    operation_id="runtimes_list",
    summary="Available runtimes with their defaults and this tenant's caps",
    responses={200: RuntimeSerializer(many=True), **errors(401, 403)},
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
        "timeout_ms": quota.default_timeout_ms(),
        "memory_mb": quota.default_memory_mb(),
        "max_retries": quota.default_max_retries,
    }
    data = [{"name": name, **RUNTIME_INFO[name], "defaults": defaults, "caps": caps} for name in RUNTIMES]
    return Response(RuntimeSerializer(data, many=True).data)


@extend_schema(
    operation_id="usage_retrieve",
    summary="This billing period's jobs, GB-seconds used and left, estimated cost, "
    "concurrency and every limit",
    responses={
        200: OpenApiResponse(description="usage of the current calendar month (UTC)"),
        **errors(401, 403),
    },
)
@api_view(["GET"])
def usage(request: Request) -> Response:
    return Response(selectors.tenant_usage(tenant=request.user.tenant))


@extend_schema(
    operation_id="stats_retrieve",
    summary="Counts by status and runtime, success rate, p50/p95 run time and queue wait, jobs per minute",
    parameters=[
        OpenApiParameter(
            "since",
            {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "maxLength": 0}]},
            description="ISO 8601, in the past; default (empty or absent): 24 hours ago",
        )
    ],
    responses={200: OpenApiResponse(description="statistics over the window"), **errors(400, 401, 403)},
)
@api_view(["GET"])
def stats(request: Request) -> Response:
    since = StatsFilter.parse(request)["since"]
    return Response(selectors.tenant_stats(tenant=request.user.tenant, since=since, now=timezone.now()))
