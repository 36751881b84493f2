"""``GET /api/v1/pools``: the worker pools a tenant can place jobs in, with its own load on each."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from lambdasite.api.schema import errors

from .. import pool_stats


class PoolWaitSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)


class PoolSerializer(serializers.Serializer):
    name = serializers.CharField()
    workers = serializers.IntegerField(help_text="live workers serving the pool")
    allowed = serializers.BooleanField(help_text="whether this tenant may place jobs in the pool")
    queued = serializers.IntegerField(help_text="this tenant's jobs placed there, waiting for a slot")
    in_flight = serializers.IntegerField(help_text="this tenant's jobs dispatched there or running")
    wait_ms = PoolWaitSerializer(
        help_text="queue wait of this tenant's jobs that started there in the last 5 minutes"
    )


class PoolListSerializer(serializers.Serializer):
    pools = PoolSerializer(many=True)


@extend_schema(
    operation_id="pools_list",
    summary="Worker pools this tenant may use that are live or hold its jobs, with its own load on each",
    responses={200: PoolListSerializer, **errors(401, 403)},
)
@api_view(["GET"])
def pools(request: Request) -> Response:
    found = pool_stats.tenant_pools(tenant=request.user.tenant)
    return Response(PoolListSerializer({"pools": found}).data)
