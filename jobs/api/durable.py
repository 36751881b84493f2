"""The durable runs' API: a run's recorded steps, and the events runs wait for."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from lambdasite.api.contract import validated
from lambdasite.api.fields import JsonValueField, StrictCharField, StrictSerializer
from lambdasite.api.query import MAX_SEQ, QueryFilter, integer_param
from lambdasite.api.schema import errors
from lambdasite.exceptions import NotFound
from lambdasite.parsers import json_problem

from .. import rendering, selectors, steprecords
from ..models import Job, Step
from ..services import waits


def _job(request: Request, job_id: str) -> Job:
    job = selectors.job_get(tenant_ids=[request.user.tenant.id], job_id=job_id)
    if job is None:
        raise NotFound("job not found")
    return job


# -- steps ---------------------------------------------------------------------------------------


class StepsFilter(QueryFilter):
    after = integer_param(0, MAX_SEQ, 0)
    limit = integer_param(1, 1000, 100)


class StepChildSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    index = serializers.IntegerField(allow_null=True, help_text="its place in the map")


class StepSerializer(serializers.Serializer):
    seq = serializers.IntegerField(help_text="its position in the run, from 1")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Step.Kind.values)
    status = serializers.ChoiceField(
        choices=Step.State.values,
        help_text="retrying: a try failed and the next is due at wake_at; waiting: a wait not yet over",
    )
    attempts = serializers.IntegerField(help_text="tries of a step's function so far")
    input = serializers.JSONField(
        allow_null=True, help_text="what it asked for: a wait's terms, a step's retries and backoff"
    )
    result = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    wake_at = serializers.DateTimeField(
        allow_null=True, help_text="when its timer fires: a sleep's end, a timeout, a retry"
    )
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    children = StepChildSerializer(many=True, help_text="an invoke's or a map's children, in order")


class StepPageSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    job_status = serializers.CharField()
    durable = serializers.BooleanField()
    steps = StepSerializer(many=True)
    next_after = serializers.IntegerField(help_text="the seq to ask after for the next page")
    complete = serializers.BooleanField(help_text="true once the run is finished and every step was returned")


def step_body(step: Step, children: list[tuple]) -> dict:
    dt = rendering.dt
    return {
        "seq": step.seq,
        "name": step.name,
        "kind": step.kind,
        "status": step.status,
        "attempts": step.attempts,
        "input": step.input,
        "result": step.result,
        "error": step.error,
        "wake_at": dt(step.wake_at),
        "started_at": dt(step.started_at),
        "finished_at": dt(step.finished_at),
        "children": [{"id": str(cid), "status": status, "index": index} for cid, status, index in children],
    }


@extend_schema(
    operation_id="jobs_steps",
    summary="A durable run's recorded steps in order: name, kind, status, tries, result or error, children",
    parameters=[StepsFilter],  # after: only steps at a larger position; limit: at most this many
    responses={200: StepPageSerializer, **errors(400, 401, 403, 404)},
)
@api_view(["GET"])
def job_steps(request: Request, job_id: str) -> Response:
    job = _job(request, job_id)
    query = StepsFilter.parse(request)
    after, limit = query["after"], query["limit"]
    rows = selectors.job_steps(job=job, after=after, limit=limit)
    children = selectors.step_children(job=job, seqs=[s.seq for s in rows if s.kind in ("invoke", "map")])
    return Response(
        {
            "job_id": job.id,
            "job_status": job.status,
            "durable": job.durable,
            "steps": [step_body(step, children.get(step.seq, [])) for step in rows],
            "next_after": rows[-1].seq if rows else after,
            "complete": job.is_finished and len(rows) < limit,
        }
    )


# -- events ---------------------------------------------------------------------------------------


class EventSerializer(StrictSerializer):
    event = StrictCharField(
        max_length=200,
        validators=[RegexValidator(steprecords.EVENT_RE.pattern)],
        help_text="the event's name, as runs wait for it: 1-200 letters, digits or ._:/-",
    )
    key = StrictCharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=steprecords.KEY_MAX,
        trim_whitespace=False,
        help_text="which of its kind: a run waits for a name and a key (an order's id, say)",
    )
    data = JsonValueField(
        required=False, default=None, allow_null=True, help_text="what a waiting run's wait returns"
    )

    def validate_key(self, value: str) -> str:
        if json_problem(value, max_depth=1) is not None:
            raise serializers.ValidationError("may not contain NUL characters or lone surrogates")
        return value


class EventReplySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event = serializers.CharField()
    key = serializers.CharField()
    received_at = serializers.DateTimeField()
    resumed = serializers.IntegerField(help_text="the runs of this tenant it resumed (waiting for it now)")


@extend_schema(
    operation_id="events_send",
    summary="Send an event: the tenant's durable runs waiting for its name and key resume with its data",
    description=(
        "Runs waiting in `ctx.wait_for_event(name, event, key, timeout_s)` for this event and key resume "
        "with `data`. The event is also kept (EVENT_RETENTION_S) for a run that asks for it later: a wait "
        "matches events received since its run began. Only this tenant's runs ever see it."
    ),
    request=EventSerializer,
    responses={202: EventReplySerializer, **errors(400, 401, 403, 413, 429)},
    examples=[
        OpenApiExample(
            "An approval",
            value={"event": "approval", "key": "order-1234", "data": {"approved": True, "by": "ana"}},
            request_only=True,
        )
    ],
)
@api_view(["POST"])
def events(request: Request) -> Response:
    body = validated(EventSerializer, request.data)
    event, resumed = waits.event_publish(
        tenant=request.user.tenant, name=body["event"], key=body["key"], data=body["data"]
    )
    return Response(
        {
            "id": event.id,
            "event": event.name,
            "key": event.key,
            "received_at": rendering.dt(event.received_at),
            "resumed": resumed,
        },
        status=202,
    )
