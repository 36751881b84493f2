"""The secrets API: owners set, rotate and delete; every key of the tenant reads names, revisions
and fingerprints. No answer holds a value. Another tenant's secret is the same 404 as a missing one."""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework.decorators import api_view
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from lambdasite.api.contract import respond_created, validated
from lambdasite.api.schema import errors, paged_by
from lambdasite.exceptions import ValidationFailed

from .. import selectors
from ..exceptions import SecretNotFound
from ..services import Actor, secret_delete, secret_put
from .serializers import SecretPutSerializer, SecretSchema, secret_body

_OWNERS = (
    "Owners only: a write-scoped key of an owner, or a write-scoped operator key (the tenant's own, made by "
    "`manage.py apikey_create` or the admin). A member's or viewer's key gets 403 `owner_required`."
)


class SecretPagination(CursorPagination):
    ordering = "name"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


PAGE_SIZE = OpenApiParameter("limit", {}, description="page size, 1 to 200; any other value means 50")
CURSOR = OpenApiParameter(
    "cursor", OpenApiTypes.STR, description="opaque cursor from `next`/`previous` (any other: 400)"
)


def actor_of(request: Request) -> Actor:
    """Who an API request acts as: its key (recorded by name), with an owner's rights or not
    (``ApiPrincipal.is_owner``)."""
    api_key = request.user.api_key
    return Actor(
        label=f"API key {api_key.name} ({api_key.prefix})",
        is_owner=request.user.is_owner,
        user=api_key.created_by,
    )


def _found(request: Request, name: str):
    found = selectors.secret_get(tenant=request.user.tenant, name=name)
    if found is None:
        raise SecretNotFound(f"no secret named {name}")
    return found


@extend_schema(
    operation_id="secrets_list",
    summary="This tenant's secrets by name: revision, fingerprint, who and when (never a value)",
    parameters=[PAGE_SIZE, CURSOR],
    responses={200: SecretSchema(many=True), **errors(400, 401, 403)},
)
@paged_by(SecretPagination)
@api_view(["GET"])
def secrets(request: Request) -> Response:
    paginator = SecretPagination()
    try:
        rows = paginator.paginate_queryset(selectors.secret_list(tenant=request.user.tenant), request)
    except drf_exceptions.NotFound:
        raise ValidationFailed(
            "cursor: invalid cursor", details={"fields": {"cursor": ["invalid cursor"]}}
        ) from None
    return paginator.get_paginated_response([secret_body(s) for s in rows])


@extend_schema(
    methods=["GET"],
    operation_id="secrets_retrieve",
    summary="One secret's name, revision, fingerprint, who and when (never its value)",
    responses={200: SecretSchema, **errors(401, 403, 404)},
)
@extend_schema(
    methods=["PUT"],
    operation_id="secrets_set",
    summary="Create a secret (201) or rotate it to a new revision (200); the value is never returned",
    description=(
        "The value is encrypted at rest under the tenant's own key; only the current revision's value is "
        'kept. Bind it to a function version with `"secrets": {"ENV_NAME": "name"}`. Names: 1-64 '
        "letters, digits, `_` or `-`, starting with a letter or `_`, case-sensitive. " + _OWNERS
    ),
    request=SecretPutSerializer,
    responses={200: SecretSchema, 201: SecretSchema, **errors(400, 401, 403, 413, 429)},
    examples=[OpenApiExample("A Stripe key", value={"value": "sk_live_…"}, request_only=True)],
)
@extend_schema(
    methods=["DELETE"],
    operation_id="secrets_delete",
    summary="Delete a secret: its value is erased; versions that bind it fail to run until it is set again",
    description=_OWNERS,
    responses={204: None, **errors(401, 403, 404, 429)},
)
@api_view(["GET", "PUT", "DELETE"])
@sensitive_variables("fields")
def secret_detail(request: Request, secret_name: str) -> Response:
    name = secret_name
    tenant = request.user.tenant
    if request.method == "GET":
        return Response(secret_body(_found(request, name)))
    if request.method == "DELETE":
        secret_delete(tenant=tenant, name=name, actor=actor_of(request))
        return Response(status=204)
    fields = validated(SecretPutSerializer, request.data)
    revision = secret_put(tenant=tenant, name=name, value=fields["value"], actor=actor_of(request))
    body = secret_body(_found(request, name))
    return respond_created(body) if revision.created else Response(body)
