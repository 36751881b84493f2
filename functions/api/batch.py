"""``POST /api/v1/jobs/batch``: up to BATCH_MAX_JOBS jobs at once, all validated before any is
accepted. It lives with functions because an item may invoke a deployed function instead of sending
code (``FunctionItemSerializer``); the jobs app below knows nothing of functions."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.contract import BatchSubmitSerializer, JobSerializer, JobSubmitSerializer, priority_field
from jobs.placement_fields import placement_fields, placement_from
from jobs.services import submit
from lambdasite.api.contract import validated
from lambdasite.api.fields import (
    ArgsField,
    QualifierField,
    StrictCharField,
    StrictSerializer,
    later_fields,
    memory_field,
    timeout_field,
    when_from,
)
from lambdasite.api.schema import errors
from lambdasite.exceptions import ApplicationError, ValidationFailed

from ..services.invoke import invocation_spec


class FunctionItemSerializer(StrictSerializer):
    """A batch item that invokes a deployed function instead of sending code."""

    function = StrictCharField(max_length=64, help_text="a deployed function's name")
    qualifier = QualifierField(required=False, help_text="alias or version number")
    args = ArgsField(required=False)
    timeout_ms = timeout_field()
    memory_mb = memory_field()
    run_at, delay_s, callback_url = later_fields()
    priority = priority_field()
    pool, placement = placement_fields()

    def validate(self, attrs):
        return placement_from(when_from(attrs))


@extend_schema(
    operation_id="jobs_batch",
    summary="Submit up to 100 jobs at once (all validated before any is accepted)",
    request=BatchSubmitSerializer,
    responses={
        202: OpenApiResponse(description='{"ids": [...], "jobs": [...]} in request order'),
        **errors(400, 401, 403, 413, 429),
    },
)
@api_view(["POST"])
def jobs_batch(request: Request) -> Response:
    items = request.data.get("jobs") if isinstance(request.data, dict) else None
    if isinstance(items, list) and any(isinstance(item, dict) and "function" in item for item in items):
        specs = _mixed_batch(request, items)
    else:
        fields = validated(BatchSubmitSerializer, request.data, context={"max": settings.BATCH_MAX_JOBS})
        specs = [submit.JobSpec(**item) for item in fields["jobs"]]
    created = submit.job_submit_batch(tenant=request.user.tenant, api_key=request.auth, specs=specs)
    return Response(
        {"ids": [str(job.id) for job in created], "jobs": JobSerializer(created, many=True).data}, status=202
    )


def _mixed_batch(request: Request, items: list) -> list[submit.JobSpec]:
    """A batch in which some items name a deployed function: each item checked on its own."""
    if len(items) > settings.BATCH_MAX_JOBS:
        raise ValidationFailed(
            f"jobs: at most {settings.BATCH_MAX_JOBS} jobs per batch",
            details={"fields": {"jobs": [f"at most {settings.BATCH_MAX_JOBS} jobs per batch"]}},
        )
    specs = []
    for index, item in enumerate(items):
        is_function = isinstance(item, dict) and "function" in item
        incoming = (FunctionItemSerializer if is_function else JobSubmitSerializer)(data=item)
        if not incoming.is_valid():
            field, problems = next(iter(incoming.errors.items()))
            raise ValidationFailed(
                f"jobs[{index}].{field}: {problems[0]}", details={"index": index, "fields": {field: problems}}
            )
        data = dict(incoming.validated_data)
        if not is_function:
            specs.append(submit.JobSpec(**data))
            continue
        try:
            specs.append(
                invocation_spec(
                    tenant=request.user.tenant,
                    name=data["function"],
                    qualifier=data.get("qualifier"),
                    args=data.get("args") or [],
                    timeout_ms=data.get("timeout_ms"),
                    memory_mb=data.get("memory_mb"),
                    run_at=data.get("run_at"),
                    delay_s=data.get("delay_s"),
                    callback_url=data.get("callback_url", ""),
                    priority=data.get("priority"),
                    placement=data.get("placement"),
                )
            )
        except ApplicationError as exc:
            exc.details = {**exc.details, "index": index}
            exc.message = f"jobs[{index}]: {exc.message}"
            raise
    return specs
