"""The routes API: a function's routes (list, create, read, change, delete), scoped to the key's
tenant (another tenant's function or route is the same 404 as one that does not exist), and the
replay of a route's job against any version."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from functions import selectors as function_selectors
from functions.exceptions import FunctionNotFound
from functions.models import Function
from jobs import selectors as job_selectors
from jobs.contract import JobDetailSerializer, JobSerializer, job_reply
from jobs.services.submit import Origin
from lambdasite.api.contract import (
    call_of,
    holding,
    idempotency_key,
    read_update_delete,
    respond,
    validated,
)
from lambdasite.api.query import WaitFilter
from lambdasite.api.schema import IDEMPOTENCY_KEY, errors, wait_parameter
from lambdasite.exceptions import NotFound

from .. import selectors
from ..exceptions import RouteNotFound
from ..models import Route
from ..services import manage, replay
from .serializers import (
    ReplaySerializer,
    RouteCreateSerializer,
    RouteSchema,
    RouteUpdateSerializer,
    route_body,
)


def _function(request: Request, name: str) -> Function:
    function = function_selectors.function_get(tenant_ids=[request.user.tenant.id], name=name)
    if function is None:
        raise FunctionNotFound(f"no function named {name}")
    return function


def _route(request: Request, name: str, route_id: str) -> Route:
    found = selectors.route_get(function=_function(request, name), route_id=route_id)
    if found is None:
        raise RouteNotFound("no such route")
    return found


@extend_schema(
    methods=["POST"],
    operation_id="routes_create",
    summary="Serve the function at a public URL, /fn/<tenant><path>",
    description=(
        "A request to the route runs the function with one argument, the request (method, path, "
        "params, query, headers, body, client_ip, route, delivery_id), and a sync route answers with "
        "what it returns: {status, headers, body[, is_base64]} or any JSON value (200). Its auth is "
        "checked before anything is spent: a refused request creates no job. A delivery id (the "
        "provider's, or the delivery_header's) is the job's idempotency key: the same delivery again "
        "gets the first job's answer."
    ),
    request=RouteCreateSerializer,
    responses={201: RouteSchema, **errors(400, 401, 403, 404, 409, 429)},
)
@extend_schema(methods=["GET"], operation_id="routes_list", summary="The function's routes",
               responses={200: RouteSchema(many=True), **errors(401, 403, 404)})  # fmt: skip
@api_view(["GET", "POST"])
def routes(request: Request, name: str) -> Response:
    function = _function(request, name)
    if request.method == "GET":
        return Response([route_body(r) for r in selectors.route_list(function=function)])
    fields = validated(RouteCreateSerializer, request.data)
    route = manage.route_create(function=function, spec=manage.RouteSpec(**fields))
    return Response(route_body(route), status=201, headers={"Location": f"{request.path}/{route.id}"})


@extend_schema(methods=["GET"], operation_id="routes_retrieve", summary="One route",
               responses={200: RouteSchema, **errors(401, 403, 404)})  # fmt: skip
@extend_schema(
    methods=["PATCH"],
    operation_id="routes_update",
    summary="Change a route (the settings given; each checked as on creation)",
    request=RouteUpdateSerializer,
    responses={200: RouteSchema, **errors(400, 401, 403, 404, 409, 429)},
)
@extend_schema(methods=["DELETE"], operation_id="routes_delete", summary="Delete a route (its URL: 404)",
               responses={204: None, **errors(401, 403, 404, 429)})  # fmt: skip
@api_view(["GET", "PATCH", "DELETE"])
def route_detail(request: Request, name: str, route_id: str) -> Response:
    return read_update_delete(
        request,
        _route(request, name, route_id),
        render=route_body,
        update=lambda route, fields: manage.route_update(route=route, **fields),
        delete=lambda route: manage.route_delete(route=route),
        changes=RouteUpdateSerializer,
    )


@extend_schema(
    operation_id="jobs_replay",
    summary="Run a route's stored request again, as another version or alias",
    description=(
        "A job made by a route keeps its request (bounded by the route's max_body_bytes, without the "
        "platform's credentials) as its argument. This submits it again, as a new job of the same "
        "function, run as `qualifier` (default: the route's). 409 `not_replayable` for any other job. "
        "`?wait` and `Idempotency-Key` work as for `POST /api/v1/jobs`."
    ),
    parameters=[wait_parameter(), IDEMPOTENCY_KEY],
    request=ReplaySerializer,
    responses={
        200: JobDetailSerializer,
        202: JobSerializer,
        **errors(400, 401, 403, 404, 409, 413, 422, 429),
    },
)
@api_view(["POST"])
def job_replay_view(request: Request, job_id: str) -> Response:
    call = call_of(request)
    wait = WaitFilter.parse(call.query)["wait"]
    fields = validated(ReplaySerializer, call.data if call.data is not None else {})
    job = job_selectors.job_get(tenant_ids=[call.tenant.id], job_id=job_id)
    if job is None:
        raise NotFound("job not found")
    again, created = replay.job_replay(
        job=job,
        qualifier=fields.get("qualifier") or None,
        origin=Origin.of_key(call.api_key),
        api_key=call.api_key,
        idempotency_key=idempotency_key(call),
    )
    return respond(job_reply(again, created, wait=wait))


job_replay = holding(job_replay_view)  # POST /api/v1/jobs/{id}/replay; a ?wait awaited off Django's thread
