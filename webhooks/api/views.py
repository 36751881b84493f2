"""The webhooks API, scoped to the key's tenant (another tenant's endpoint is the same 404)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from lambdasite.api.contract import read_update_delete, respond_created, validated
from lambdasite.api.schema import errors

from .. import selectors
from ..exceptions import DeliveryNotFound, EndpointNotFound
from ..models import WebhookEndpoint
from ..services import delivery, endpoints, ping
from .serializers import (
    DeliverySchema,
    EndpointCreateSerializer,
    EndpointSchema,
    EndpointUpdateSerializer,
    delivery_body,
    endpoint_body,
)


def _endpoint(request: Request, endpoint_id: str) -> WebhookEndpoint:
    found = selectors.endpoint_get(tenant_ids=[request.user.tenant.id], endpoint_id=endpoint_id)
    if found is None:
        raise EndpointNotFound("no such webhook endpoint")
    return found


@extend_schema(
    methods=["POST"],
    operation_id="webhooks_create",
    summary="Register an endpoint; the answer shows its signing secret, once",
    description=(
        "Deliveries follow Standard Webhooks: headers `webhook-id`, `webhook-timestamp` and "
        "`webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` with the secret), a JSON "
        'body `{"type", "timestamp", "data"}` whose data is the job as the API shows it. Retried on any '
        "non-2xx or network error for about a day, honouring Retry-After. The URL must be http(s) to a "
        "public address."
    ),
    request=EndpointCreateSerializer,
    responses={201: EndpointSchema, **errors(400, 401, 403, 404, 429)},
)
@extend_schema(methods=["GET"], operation_id="webhooks_list", summary="This tenant's endpoints",
               responses={200: EndpointSchema(many=True), **errors(401, 403)})  # fmt: skip
@api_view(["GET", "POST"])
def webhooks(request: Request) -> Response:
    tenant = request.user.tenant
    if request.method == "GET":
        return Response([endpoint_body(e) for e in selectors.endpoint_list(tenant_ids=[tenant.id])])
    fields = validated(EndpointCreateSerializer, request.data)
    created = endpoints.endpoint_create(tenant=tenant, **fields)
    body = endpoint_body(created, secret=True)
    return respond_created(body)


@extend_schema(methods=["GET"], operation_id="webhooks_retrieve", summary="One endpoint",
               responses={200: EndpointSchema, **errors(401, 403, 404)})  # fmt: skip
@extend_schema(
    methods=["PATCH"],
    operation_id="webhooks_update",
    summary="Change an endpoint; enabled true re-enables one that was disabled",
    request=EndpointUpdateSerializer,
    responses={200: EndpointSchema, **errors(400, 401, 403, 404, 429)},
)
@extend_schema(methods=["DELETE"], operation_id="webhooks_delete", summary="Delete an endpoint",
               responses={204: None, **errors(401, 403, 404, 429)})  # fmt: skip
@api_view(["GET", "PATCH", "DELETE"])
def webhook_detail(request: Request, endpoint_id: str) -> Response:
    return read_update_delete(
        request,
        _endpoint(request, endpoint_id),
        render=endpoint_body,
        update=lambda endpoint, fields: endpoints.endpoint_update(endpoint=endpoint, **fields),
        delete=lambda endpoint: endpoints.endpoint_delete(endpoint=endpoint),
        changes=EndpointUpdateSerializer,
    )


@extend_schema(
    operation_id="webhooks_rotate_secret",
    summary="A new signing secret for the endpoint (shown once); the old one stops signing at once",
    request=None,
    responses={200: EndpointSchema, **errors(401, 403, 404, 429)},
)
@api_view(["POST"])
def webhook_rotate(request: Request, endpoint_id: str) -> Response:
    endpoint = endpoints.endpoint_rotate_secret(endpoint=_endpoint(request, endpoint_id))
    return Response(endpoint_body(endpoint, secret=True))


@extend_schema(
    operation_id="webhooks_deliveries",
    summary="The endpoint's deliveries, newest first, with every attempt",
    responses={200: DeliverySchema(many=True), **errors(401, 403, 404)},
)
@api_view(["GET"])
def webhook_deliveries(request: Request, endpoint_id: str) -> Response:
    endpoint = _endpoint(request, endpoint_id)
    return Response([delivery_body(d) for d in selectors.delivery_list(endpoint=endpoint)])


@extend_schema(
    operation_id="webhooks_redeliver",
    summary="Send a delivery again (same webhook-id and body, to the endpoint's current URL)",
    description=(
        "409 `redelivery_pending` while an earlier redelivery of the same message is pending, 409 "
        "`redelivery_limit` once the message was redelivered WEBHOOK_MAX_REDELIVERIES times; webhook "
        "changes are rate-limited per tenant (429 with Retry-After)."
    ),
    request=None,
    responses={202: DeliverySchema, **errors(401, 403, 404, 409, 429)},
)
@api_view(["POST"])
def webhook_redeliver(request: Request, endpoint_id: str, delivery_id: str) -> Response:
    endpoint = _endpoint(request, endpoint_id)
    found = selectors.delivery_get(endpoint=endpoint, delivery_id=delivery_id)
    if found is None:
        raise DeliveryNotFound("no such delivery")
    return Response(delivery_body(delivery.redeliver(delivery=found), attempts=False), status=202)


@extend_schema(
    operation_id="webhooks_test",
    summary="Send the endpoint a signed test event (type webhook.test), like a real one",
    description=(
        "Queues a small `webhook.test` event for the endpoint and answers with its delivery (202, "
        "pending). The delivery process sends it like any other: the same SSRF check when the name is "
        "resolved, the same Standard Webhooks signature, recorded with its attempt in the endpoint's "
        'deliveries. Body: `{"type": "webhook.test", "timestamp", "data": {"endpoint", "url", "message"}}`. '
        "Tried once, never retried. 409 `endpoint_disabled` for a disabled endpoint; 429 with "
        "Retry-After within WEBHOOK_TEST_INTERVAL_S of the last test of the same endpoint, or past the "
        "tenant's webhook writes per minute."
    ),
    request=None,
    responses={202: DeliverySchema, **errors(401, 403, 404, 409, 429)},
)
@api_view(["POST"])
def webhook_test(request: Request, endpoint_id: str) -> Response:
    sent = ping.endpoint_send_test(endpoint=_endpoint(request, endpoint_id))
    return Response(delivery_body(sent, attempts=False), status=202)


@extend_schema(
    operation_id="webhooks_callback_secret_rotate",
    summary="A new secret for the tenant's callback_url deliveries (shown once)",
    request=None,
    responses={200: OpenApiResponse(description='{"secret": "whsec_…"}'), **errors(401, 403, 429)},
)
@api_view(["POST"])
def callback_secret(request: Request) -> Response:
    return Response({"secret": endpoints.callback_secret_rotate(tenant=request.user.tenant)})
