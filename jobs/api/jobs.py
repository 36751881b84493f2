"""The jobs API: thin views that parse, call one service or selector, and shape the answer."""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from lambdasite.exceptions import ApplicationError, NotFound, ValidationFailed
from sandbox import RUNTIMES

from .. import completion, selectors
from ..models import Job, Status
from ..paging import JobCursorPagination, job_page
from ..services import actions, submit
from .filters import JobListFilter, LogsFilter, WaitFilter
from .schema import errors, paged_by
from .serializers import (
    BatchSubmitSerializer,
    FunctionItemSerializer,
    JobDetailSerializer,
    JobSerializer,
    JobSubmitSerializer,
    LogLineSerializer,
    LogPageSerializer,
)

_ADD_EXAMPLE = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}
_ASYNC_EXAMPLE = {
    "runtime": "node",
    "code": "async function main(delay) {\n  await new Promise(r => setTimeout(r, delay));\n "
    " return 'Completed';\n}",
    "args": [1000],
    "timeout_ms": 5000,
}


# a page size outside 1-200, or not a number, means the default (50): any value is accepted
PAGE_SIZE = OpenApiParameter("limit", {}, description="page size, 1 to 200; any other value means 50")
CURSOR = OpenApiParameter(
    "cursor", OpenApiTypes.STR, description="opaque cursor from `next`/`previous` (any other: 400)"
)
_STATUS = "(" + "|".join(Status.values) + ")"
STATUS_LIST = f"^,*({_STATUS}(,+{_STATUS})*,*)?$"


def _job(request: Request, job_id: str) -> Job:
    """The caller's tenant's job; another tenant's job, or a malformed id, is simply not found."""
    job = selectors.job_get(tenant_ids=[request.user.tenant.id], job_id=job_id)
    if job is None:
        raise NotFound("job not found")
    return job


def _paginated(request: Request, qs) -> Response:
    paginator, page = job_page(request, qs)
    return paginator.get_paginated_response(JobSerializer(page.rows, many=True).data)


@extend_schema(
    methods=["POST"],
    operation_id="jobs_submit",
    summary="Submit a function to run",
    description=(
        "Returns 202 with the queued job. With `?wait=N` (at most WAIT_MAX_S) the answer "
        "is held until the job "
        "finishes or N seconds pass: 200 with the finished job, else the 202 body. With an `Idempotency-Key` "
        "header, repeating the same body within 24 h returns the first job (200) instead of a new one."
    ),
    parameters=[
        OpenApiParameter(
            "wait",
            {"type": "number", "minimum": 0, "maximum": settings.WAIT_MAX_S},
            description="seconds to wait for the result (synchronous invoke)",
        ),
        OpenApiParameter(
            "Idempotency-Key",
            {"type": "string", "minLength": 1, "maxLength": 255},
            location=OpenApiParameter.HEADER,
            required=False,
        ),
    ],
    request=JobSubmitSerializer,
    responses={200: JobDetailSerializer, 202: JobSerializer, **errors(400, 401, 403, 413, 422, 429)},
    examples=[
        OpenApiExample("Add two numbers (Python)", value=_ADD_EXAMPLE, request_only=True),
        OpenApiExample("Async wait (Node)", value=_ASYNC_EXAMPLE, request_only=True),
    ],
)
@extend_schema(
    methods=["GET"],
    operation_id="jobs_list",
    summary="List this tenant's jobs, newest first",
    parameters=[
        OpenApiParameter(
            "status",
            {"type": "string", "pattern": STATUS_LIST},
            description="comma-separated statuses, e.g. failed,timed_out",
        ),
        OpenApiParameter("runtime", OpenApiTypes.STR, enum=list(RUNTIMES)),
        PAGE_SIZE,
        CURSOR,
    ],
    responses={200: JobSerializer(many=True), **errors(400, 401, 403)},
)
@paged_by(JobCursorPagination)
@api_view(["GET", "POST"])
def jobs(request: Request) -> Response:
    tenant = request.user.tenant
    if request.method == "POST":
        WaitFilter.parse(request)  # validated before anything is written
        incoming = JobSubmitSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= 255):
            raise ValidationFailed(
                "Idempotency-Key: must be 1 to 255 characters",
                details={"fields": {"Idempotency-Key": ["1 to 255 characters"]}},
            )
        spec = submit.JobSpec(**incoming.validated_data)
        job, created = submit.job_submit(tenant=tenant, api_key=request.auth, spec=spec, idempotency_key=key)
        if not created:
            return Response(JobDetailSerializer(job).data, status=200)
        body = JobSerializer(job).data
        return Response(body, status=202, headers={"Location": body["links"]["self"]})
    query = JobListFilter.parse(request)
    return _paginated(
        request,
        selectors.job_list(tenant_ids=[tenant.id], statuses=query["status"], runtime=query["runtime"]),
    )


def _release_connections() -> None:
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:  # (a test's wrapping transaction stays open)
            conn.close()


def _finished_body(job_id, tenant) -> dict | None:
    job = selectors.job_get(tenant_ids=[tenant.id], job_id=job_id)
    return JobDetailSerializer(job).data if job is not None else None  # None: deleted in between


@csrf_exempt
async def jobs_endpoint(request):
    """POST/GET /api/v1/jobs. A ?wait on submit is awaited here, off Django's sync thread:
    the wait listens for the job's completion signal instead of holding a thread."""
    response = await sync_to_async(jobs)(request)
    if request.method != "POST":
        return response
    return await wait_for_job(request, response)


async def wait_for_job(request, response):
    """Hold a 202 (a job was accepted) until the job finishes or ``?wait=N`` seconds pass; then the
    finished job, with 200. Any other answer is returned as it is."""
    if response.status_code != 202:
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
    if finished := await completion.wait_finished(job_id, min(wait, settings.WAIT_MAX_S)):
        if isinstance(finished, bytes):  # published by the finishing worker: no database read
            body = json.loads(finished)
        else:
            tenant = response.renderer_context["request"].user.tenant
            body = await sync_to_async(_finished_body)(job_id, tenant)
        if body is not None:
            response.data, response.status_code, response._is_rendered = body, 200, False
    return response


# the schema generator describes the DRF view behind the async wrapper
jobs_endpoint.cls = jobs.cls
jobs_endpoint.initkwargs = jobs.initkwargs


@extend_schema(
    methods=["GET"],
    operation_id="jobs_retrieve",
    summary="One job with its result, error and attempt history",
    responses={200: JobDetailSerializer, **errors(401, 403, 404)},
)
@extend_schema(
    methods=["DELETE"],
    operation_id="jobs_delete",
    summary="Delete a finished job with its attempts and logs",
    responses={204: None, **errors(401, 403, 404, 409)},
)
@api_view(["GET", "DELETE"])
def job_detail(request: Request, job_id: str) -> Response:
    job = _job(request, job_id)
    if request.method == "DELETE":
        actions.job_delete(job=job)
        return Response(status=204)
    return Response(JobDetailSerializer(job).data)


@extend_schema(
    operation_id="jobs_logs",
    summary="A job's output lines in order",
    parameters=[LogsFilter],  # after: only lines with a larger sequence number; limit: at most this many
    responses={200: LogPageSerializer, **errors(400, 401, 403, 404)},
)
@api_view(["GET"])
def job_logs(request: Request, job_id: str) -> Response:
    job = _job(request, job_id)
    query = LogsFilter.parse(request)
    after, limit = query["after"], query["limit"]
    lines = selectors.job_logs(job=job, after=after, limit=limit)
    return Response(
        {
            "job_id": job.id,
            "job_status": job.status,
            "lines": LogLineSerializer(lines, many=True).data,
            "next_after": lines[-1].seq if lines else after,
            "complete": job.is_finished and len(lines) < limit,
        }
    )


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
        incoming = BatchSubmitSerializer(data=request.data, context={"max": settings.BATCH_MAX_JOBS})
        incoming.is_valid(raise_exception=True)
        specs = [submit.JobSpec(**item) for item in incoming.validated_data["jobs"]]
    created = submit.job_submit_batch(tenant=request.user.tenant, api_key=request.auth, specs=specs)
    return Response(
        {"ids": [str(job.id) for job in created], "jobs": JobSerializer(created, many=True).data}, status=202
    )


def _mixed_batch(request: Request, items: list) -> list[submit.JobSpec]:
    """A batch in which some items name a deployed function: each item checked on its own."""
    from functions.services.invoke import invocation_spec

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
                )
            )
        except ApplicationError as exc:
            exc.details = {**exc.details, "index": index}
            exc.message = f"jobs[{index}]: {exc.message}"
            raise
    return specs


@extend_schema(
    operation_id="jobs_cancel",
    summary="Cancel a job: a waiting job never runs, a running one is killed within ~1 s",
    request=None,
    responses={202: JobSerializer, **errors(401, 403, 404, 409)},
)
@api_view(["POST"])
def job_cancel(request: Request, job_id: str) -> Response:
    job = actions.job_cancel(job=_job(request, job_id))
    return Response(JobSerializer(job).data, status=202)


@extend_schema(
    operation_id="jobs_retry",
    summary="Run a dead, failed, timed-out, killed or cancelled job again (a new attempt of the same job)",
    request=None,
    responses={202: JobSerializer, **errors(401, 403, 404, 409)},
)
@api_view(["POST"])
def job_retry(request: Request, job_id: str) -> Response:
    job = actions.job_requeue(job=_job(request, job_id))
    return Response(JobSerializer(job).data, status=202)


@extend_schema(
    operation_id="dead_letters_list",
    summary="Jobs whose retries are exhausted (the dead-letter queue), newest first",
    parameters=[PAGE_SIZE, CURSOR],
    responses={200: JobSerializer(many=True), **errors(400, 401, 403)},
)
@paged_by(JobCursorPagination)
@api_view(["GET"])
def dead_letters(request: Request) -> Response:
    return _paginated(
        request, selectors.job_list(tenant_ids=[request.user.tenant.id], statuses=[Status.DEAD])
    )
