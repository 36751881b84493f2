"""The schedules API, scoped to the key's tenant (another tenant's schedule is the same 404)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from lambdasite.api.contract import read_update_delete, respond_created, validated
from lambdasite.api.schema import errors

from .. import selectors
from ..exceptions import ScheduleNotFound
from ..models import Schedule
from ..services import manage, ticks
from .serializers import (
    RunSchema,
    ScheduleCreateSerializer,
    ScheduleSchema,
    ScheduleUpdateSerializer,
    run_body,
    schedule_body,
)

_EXAMPLE = {"name": "nightly-report", "cron": "0 2 * * *", "timezone": "Europe/Berlin", "function": "report",
            "args": ["daily"], "overlap": "skip", "catch_up": "latest"}  # fmt: skip


def _schedule(request: Request, name: str) -> Schedule:
    found = selectors.schedule_get(tenant_ids=[request.user.tenant.id], name=name)
    if found is None:
        raise ScheduleNotFound(f"no schedule named {name}")
    return found


@extend_schema(
    methods=["POST"],
    operation_id="schedules_create",
    summary="Invoke a function on a cron schedule",
    description=(
        "Cron: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; "
        "`timezone` an IANA name (DST handled as Debian's cron does). `overlap: skip` skips a tick while "
        "the previous run waits or runs; `catch_up: latest` runs once for ticks missed while the service was "
        "down, `none` skips them. After `max_failures` consecutive failed runs the schedule pauses itself. "
        "`qualifier` must name an alias or a version the function has (else a 400 naming the field). "
        "The answer lists the next 5 fire times."
    ),
    request=ScheduleCreateSerializer,
    responses={201: ScheduleSchema, **errors(400, 401, 403, 404, 409, 429)},
    examples=[OpenApiExample("Nightly at 02:00 Berlin time", value=_EXAMPLE, request_only=True)],
)
@extend_schema(
    methods=["GET"], operation_id="schedules_list", summary="This tenant's schedules",
    responses={200: ScheduleSchema(many=True), **errors(401, 403)},
)  # fmt: skip
@api_view(["GET", "POST"])
def schedules(request: Request) -> Response:
    tenant = request.user.tenant
    if request.method == "GET":
        return Response([schedule_body(s) for s in selectors.schedule_list(tenant_ids=[tenant.id])])
    fields = validated(ScheduleCreateSerializer, request.data)
    data = dict(fields)
    name = data.pop("name")
    created = manage.schedule_create(tenant=tenant, name=name, spec=manage.ScheduleSpec(**data))
    body = schedule_body(created)
    return respond_created(body)


@extend_schema(
    methods=["GET"],
    operation_id="schedules_retrieve",
    summary="One schedule with its next fire times",
    responses={200: ScheduleSchema, **errors(401, 403, 404)},
)
@extend_schema(
    methods=["PATCH"],
    operation_id="schedules_update",
    summary="Change a schedule; enabled false pauses it, true resumes it (from now)",
    request=ScheduleUpdateSerializer,
    responses={200: ScheduleSchema, **errors(400, 401, 403, 404)},
)
@extend_schema(
    methods=["DELETE"],
    operation_id="schedules_delete",
    summary="Delete a schedule (its jobs stay)",
    responses={204: None, **errors(401, 403, 404)},
)
@api_view(["GET", "PATCH", "DELETE"])
def schedule_detail(request: Request, name: str) -> Response:
    return read_update_delete(
        request,
        _schedule(request, name),
        render=schedule_body,
        update=lambda schedule, fields: manage.schedule_update(
            schedule=schedule, spec=manage.ScheduleSpec(**fields)
        ),
        delete=lambda schedule: manage.schedule_delete(schedule=schedule),
        changes=ScheduleUpdateSerializer,
    )


@extend_schema(
    operation_id="schedules_runs",
    summary="The schedule's runs, newest first: fired (with the job), skipped or refused",
    responses={200: RunSchema(many=True), **errors(401, 403, 404)},
)
@api_view(["GET"])
def schedule_runs(request: Request, name: str) -> Response:
    schedule = _schedule(request, name)
    return Response([run_body(r) for r in selectors.run_list(schedule=schedule)])


@extend_schema(
    operation_id="schedules_run_now",
    summary="Run the schedule's function now (a manual run; the ticks are unchanged)",
    description="A refused invocation (rate, budget, a disabled function, a failed version) is "
    "answered with its error and records no run. A schedule whose alias was deleted after it was saved "
    "is a 409 `schedule_qualifier_gone` (change its `qualifier`, or set the alias again).",
    request=None,
    responses={202: RunSchema, **errors(401, 403, 404, 409, 429)},
)
@api_view(["POST"])
def schedule_run_now(request: Request, name: str) -> Response:
    run = ticks.schedule_run_now(schedule=_schedule(request, name))
    return Response(run_body(run), status=202)
