"""The hot endpoints of the jobs API, once for both transports (``lambdasite/api/contract.py``):
the DRF views in ``jobs.py`` and the fast path (``lambdasite/asgi.py``) call these."""

from __future__ import annotations

from lambdasite.api.contract import Call, Reply, idempotency_key, validated
from lambdasite.api.query import WaitFilter
from lambdasite.exceptions import NotFound

from ..contract import JobSubmitSerializer, job_detail_body, job_reply
from ..services import submit as submitting


def submit(call: Call) -> Reply:
    """POST /api/v1/jobs: every check before anything is written, in this order: ``?wait``, the
    body, ``Idempotency-Key``; then the service (the tenant's caps, budget, rate, idempotency)."""
    wait = WaitFilter.parse(call.query)["wait"]
    spec = submitting.JobSpec(**validated(JobSubmitSerializer, call.data))
    job, created = submitting.job_submit(
        tenant=call.tenant, api_key=call.api_key, spec=spec, idempotency_key=idempotency_key(call)
    )
    return job_reply(job, created, wait=wait)


def detail(call: Call, job_id: str) -> Reply:
    """GET /api/v1/jobs/{id}: another tenant's job, or a malformed id, is simply not found."""
    body = job_detail_body(tenant_ids=[call.tenant.id], job_id=job_id)
    if body is None:
        raise NotFound("job not found")
    return Reply(200, body)
