"""The jobs API: thin views that parse, call one service or selector, and shape the answer."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from lambdasite.api.contract import call_of, holding, respond
from lambdasite.api.query import LogsFilter
from lambdasite.api.schema import IDEMPOTENCY_KEY, errors, paged_by, wait_parameter
from lambdasite.exceptions import NotFound
from sandbox import RUNTIMES

from .. import selectors
from ..contract import JobDetailSerializer, JobSerializer, JobSubmitSerializer
from ..models import Job, Status
from ..paging import JobCursorPagination, job_page
from ..services import actions
from . import handlers
from .filters import ConnectionsFilter, JobListFilter
from .serializers import ConnectionPageSerializer, ConnectionSerializer, LogLineSerializer, LogPageSerializer

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
        wait_parameter("seconds to wait for the result (synchronous invoke)"),
        IDEMPOTENCY_KEY,
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
    if request.method == "POST":
        return respond(handlers.submit(call_of(request)))
    query = JobListFilter.parse(request)
    return _paginated(
        request,
        selectors.job_list(
            tenant_ids=[request.user.tenant.id], statuses=query["status"], runtime=query["runtime"]
        ),
    )


jobs_endpoint = holding(jobs)  # POST/GET /api/v1/jobs: a ?wait on submit awaited off Django's thread


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
    if request.method == "DELETE":
        actions.job_delete(job=_job(request, job_id))
        return Response(status=204)
    return respond(handlers.detail(call_of(request), job_id))


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
    operation_id="jobs_connections",
    summary="The connections a job asked the egress proxy for, in order: host, address, verdict, bytes",
    parameters=[ConnectionsFilter],  # attempt: one attempt's; after: a larger seq; limit: at most this many
    responses={200: ConnectionPageSerializer, **errors(400, 401, 403, 404)},
)
@api_view(["GET"])
def job_connections(request: Request, job_id: str) -> Response:
    job = _job(request, job_id)
    query = ConnectionsFilter.parse(request)
    attempt, after, limit = query["attempt"], query["after"], query["limit"]
    rows = selectors.job_connections(job=job, attempt=attempt, after=after, limit=limit)
    return Response(
        {
            "job_id": job.id,
            "job_status": job.status,
            "attempt": attempt,
            "egress": job.egress,
            "connections": ConnectionSerializer(rows, many=True).data,
            "next_after": rows[-1].seq if rows else after,
            "complete": job.is_finished and len(rows) < limit,
            "dropped": selectors.connections_dropped(job=job, attempt=attempt),
        }
    )


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
