"""The functions API: deploy, version, alias, invoke and warm, each scoped to the key's tenant (another
tenant's function is the same 404 as one that does not exist)."""

from __future__ import annotations

from django.db.models import OuterRef, Prefetch, Subquery
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.contract import JobDetailSerializer, JobSerializer
from lambdasite.api.contract import call_of, holding, read_update_delete, respond, respond_created, validated
from lambdasite.api.query import LogsFilter
from lambdasite.api.schema import IDEMPOTENCY_KEY, errors, wait_parameter

from .. import selectors
from ..exceptions import AliasNotFound, FunctionNotFound, VersionNotFound
from ..models import Alias, BuildStatus, Function, FunctionVersion
from ..services import aliases, deploy, warm
from ..services.flow import FLOW_FIELDS, FlowSettings
from . import handlers
from .serializers import (
    AliasSchema,
    AliasSetSerializer,
    BuildLogPageSchema,
    FunctionCreatedSchema,
    FunctionCreateSerializer,
    FunctionSchema,
    FunctionUpdateSerializer,
    InvokeSerializer,
    VersionCreateSerializer,
    VersionSchema,
    WarmSerializer,
    alias_body,
    build_line_body,
    function_body,
    version_body,
)

_EXAMPLE = {
    "name": "slugify",
    "runtime": "python",
    "code": "from slugify import slugify\n\ndef main(text):\n    return slugify(text)\n",
    "requirements": "python-slugify==8.0.4\n",
}


def _function(request: Request, name: str) -> Function:
    function = selectors.function_get(tenant_ids=[request.user.tenant.id], name=name)
    if function is None:
        raise FunctionNotFound(f"no function named {name}")
    return function


def _number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:  # "²" is a digit to isdigit()
        raise VersionNotFound(f"no version {text!r}")
    return int(text)


def _spec(data: dict) -> deploy.VersionSpec:
    fields = {f.name for f in deploy.VersionSpec.__dataclass_fields__.values()}
    return deploy.VersionSpec(**{k: v for k, v in data.items() if k in fields})


def _flow(data: dict) -> FlowSettings:
    """The flow-control fields taken out of a create body (left out or null: none)."""
    given = {f: data.pop(f) for f in FLOW_FIELDS if f in data}
    return FlowSettings().changed(**given)


def _detail(function: Function) -> dict:
    latest = selectors.latest_ready(function=function)
    return function_body(
        function,
        latest_ready=latest.number if latest is not None else None,
        aliases=list(selectors.alias_list(function=function)),
    )


def _listed(tenant) -> list[dict]:
    """Every function as its own GET shows it, in three queries however many there are: the
    latest ready version's number as a subquery, the aliases (with their versions) prefetched."""
    ready = FunctionVersion.objects.filter(function=OuterRef("pk"), status=BuildStatus.READY)
    aliases = Alias.objects.select_related("version", "additional_version").order_by("name")
    rows = (
        selectors.function_list(tenant_ids=[tenant.id])
        .annotate(latest_ready_number=Subquery(ready.order_by("-number").values("number")[:1]))
        .prefetch_related(Prefetch("aliases", queryset=aliases))
    )
    return [function_body(f, latest_ready=f.latest_ready_number, aliases=f.aliases.all()) for f in rows]


@extend_schema(
    methods=["POST"],
    operation_id="functions_create",
    summary="Deploy a new function (its version 1)",
    description=(
        "Python functions list `requirements` (requirements.txt lines), Node functions `dependencies` "
        "(package.json's object). Without dependencies the version is `ready` at once; with them it is "
        "`building` until a worker has resolved and installed them (GET the version, or its build-logs)."
    ),
    request=FunctionCreateSerializer,
    responses={201: FunctionCreatedSchema, **errors(400, 401, 403, 409, 413, 429)},
    examples=[OpenApiExample("Python with a dependency", value=_EXAMPLE, request_only=True)],
)
@extend_schema(
    methods=["GET"],
    operation_id="functions_list",
    summary="This tenant's functions, by name",
    responses={200: FunctionSchema(many=True), **errors(401, 403)},
)
@api_view(["GET", "POST"])
def functions(request: Request) -> Response:
    tenant = request.user.tenant
    if request.method == "GET":
        return Response(_listed(tenant))
    fields = validated(FunctionCreateSerializer, request.data)
    data = dict(fields)
    function, version = deploy.function_create(
        tenant=tenant,
        user=getattr(request.auth, "created_by", None),
        name=data.pop("name"),
        runtime=data.pop("runtime"),
        provisioned=data.pop("provisioned", 0),
        placement=data.pop("placement", None),
        flow=_flow(data),
        spec=_spec(data),
    )
    body = {**_detail(function), "version": version_body(version)}
    return respond_created(body)


@extend_schema(methods=["GET"], operation_id="functions_retrieve", summary="One function with its aliases",
               responses={200: FunctionSchema, **errors(401, 403, 404)})  # fmt: skip
@extend_schema(
    methods=["PATCH"],
    operation_id="functions_update",
    summary="Change the warm pool size (provisioned), the description, flow control or placement",
    description=(
        "Placement: `pool` or `placement` (as on invoke) sets where its jobs run from now on. "
        "Flow control: `max_concurrency` (a ceiling; null: none), `reserved_concurrency` (slots of the "
        "tenant's cap kept for this function), `concurrency_key` (a path into the args such as "
        "`$[0].store_id`; empty or null: none) and `concurrency_per_key` (jobs of one key at once). "
        "Fields left out stay as they are."
    ),
    request=FunctionUpdateSerializer,
    responses={200: FunctionSchema, **errors(400, 401, 403, 404, 429)},
)
@extend_schema(
    methods=["DELETE"],
    operation_id="functions_delete",
    summary="Delete a function, its versions and aliases (its unfinished jobs are cancelled)",
    responses={204: None, **errors(401, 403, 404)},
)
@api_view(["GET", "PATCH", "DELETE"])
def function_detail(request: Request, name: str) -> Response:
    return read_update_delete(
        request,
        _function(request, name),
        render=_detail,
        update=lambda function, fields: deploy.function_update(function=function, **fields),
        delete=lambda function: deploy.function_delete(function=function),
        changes=FunctionUpdateSerializer,
    )


@extend_schema(
    methods=["POST"],
    operation_id="functions_versions_create",
    summary="Deploy the next version (settings not given stay the function's)",
    request=VersionCreateSerializer,
    responses={201: VersionSchema, **errors(400, 401, 403, 404, 413)},
)
@extend_schema(
    methods=["GET"],
    operation_id="functions_versions_list",
    summary="The function's versions, newest first",
    responses={200: VersionSchema(many=True), **errors(401, 403, 404)},
)
@api_view(["GET", "POST"])
def versions(request: Request, name: str) -> Response:
    function = _function(request, name)
    if request.method == "GET":
        return Response([version_body(v) for v in selectors.version_list(function=function)])
    fields = validated(VersionCreateSerializer, request.data)
    version = deploy.version_create(
        function=function, user=getattr(request.auth, "created_by", None), spec=_spec(fields)
    )
    body = version_body(version)
    return respond_created(body)


@extend_schema(
    operation_id="functions_versions_retrieve",
    summary="One version, with its code and resolved lock (versions are immutable)",
    responses={200: VersionSchema, **errors(401, 403, 404)},
)
@api_view(["GET"])
def version_detail(request: Request, name: str, number: str) -> Response:
    function = _function(request, name)
    version = selectors.version_get(function=function, number=_number(number))
    if version is None:
        raise VersionNotFound(f"{name} has no version {number}")
    return Response(version_body(version, code=True))


@extend_schema(
    operation_id="functions_build_logs",
    summary="A version's build log (resolver and installer output), in order",
    parameters=[LogsFilter],  # after: only lines with a larger sequence number; limit: at most this many
    responses={200: BuildLogPageSchema, **errors(400, 401, 403, 404)},
)
@api_view(["GET"])
def build_logs(request: Request, name: str, number: str) -> Response:
    function = _function(request, name)
    version = selectors.version_get(function=function, number=_number(number))
    if version is None:
        raise VersionNotFound(f"{name} has no version {number}")
    query = LogsFilter.parse(request)
    lines = selectors.build_log(version=version, after=query["after"], limit=query["limit"])
    return Response(
        {
            "function": function.name,
            "version": version.number,
            "status": version.status,
            "lines": [build_line_body(line) for line in lines],
            "next_after": lines[-1].seq if lines else query["after"],
            "complete": version.status != "building" and len(lines) < query["limit"],
        }
    )


@extend_schema(
    operation_id="functions_aliases_list",
    summary="The function's aliases",
    responses={200: AliasSchema(many=True), **errors(401, 403, 404)},
)
@api_view(["GET"])
def alias_list(request: Request, name: str) -> Response:
    function = _function(request, name)
    return Response([alias_body(a) for a in selectors.alias_list(function=function)])


@extend_schema(methods=["GET"], operation_id="functions_aliases_retrieve", summary="One alias",
               responses={200: AliasSchema, **errors(401, 403, 404)})  # fmt: skip
@extend_schema(
    methods=["PUT"],
    operation_id="functions_aliases_set",
    summary="Create or move an alias; with additional_version and weight, a canary",
    request=AliasSetSerializer,
    responses={200: AliasSchema, 201: AliasSchema, **errors(400, 401, 403, 404, 409)},
)
@extend_schema(methods=["DELETE"], operation_id="functions_aliases_delete", summary="Delete an alias",
               responses={204: None, **errors(401, 403, 404)})  # fmt: skip
@api_view(["GET", "PUT", "DELETE"])
def alias_detail(request: Request, name: str, alias: str) -> Response:
    function = _function(request, name)
    if request.method == "DELETE":
        aliases.alias_delete(function=function, name=alias)
        return Response(status=204)
    if request.method == "GET":
        found = selectors.alias_get(function=function, name=alias)
        if found is None:
            raise AliasNotFound(f"{name} has no alias {alias!r}")
        return Response(alias_body(found))
    data = validated(AliasSetSerializer, request.data)
    found, created = aliases.alias_set(
        function=function,
        name=alias,
        version=data["version"],
        additional_version=data.get("additional_version"),
        weight=data.get("weight"),
        description=data.get("description"),
    )
    return Response(alias_body(found), status=201 if created else 200)


@extend_schema(
    operation_id="functions_invoke",
    summary="Invoke a function by name: a job that runs as the chosen version",
    description=(
        "`?qualifier=` names an alias or a version number; none means the latest ready version. "
        "`?wait=N` and `Idempotency-Key` work as for `POST /api/v1/jobs`. A version still building "
        "queues the job until its build ends; a version whose build failed is a 409 with the build error."
    ),
    parameters=[
        OpenApiParameter(
            "qualifier",
            {"type": "string", "pattern": "^[A-Za-z0-9_-]{0,64}$"},
            description="alias name or version number",
        ),
        wait_parameter(),
        IDEMPOTENCY_KEY,
    ],
    request=InvokeSerializer,
    responses={
        200: JobDetailSerializer,
        202: JobSerializer,
        **errors(400, 401, 403, 404, 409, 413, 422, 429),
    },
)
@api_view(["POST"])
def invoke_view(request: Request, name: str) -> Response:
    return respond(handlers.invoke(call_of(request), name))


invoke = holding(invoke_view)  # POST /api/v1/functions/{name}/invoke; a ?wait awaited off Django's thread


@extend_schema(
    operation_id="functions_warm",
    summary="Keep warm cells of the latest ready version for a while (module initialised before any call)",
    request=WarmSerializer,
    responses={
        202: OpenApiResponse(description='{"version": n, "queued": count}'),
        **errors(400, 401, 403, 404, 409, 429),
    },
)
@api_view(["POST"])
def warm_view(request: Request, name: str) -> Response:
    function = _function(request, name)
    # its schema says a JSON object (or no body): a body of null is refused as any non-object is
    fields = validated(WarmSerializer, request.data)
    version, queued = warm.warm_request(function=function, count=fields["count"])
    return Response({"function": function.name, "version": version.number, "queued": queued}, status=202)
