"""The jobs API's fast path (see ``lambdasite/fasthttp.py``): submit and a job's detail, answered
without Django's request handling when the request is one this module is sure of; ``None`` hands
the request to the DRF views in ``jobs.py``, which answer everything else (every error included).

The checks mirror ``JobSubmitSerializer``, ``WaitFilter`` and ``HasTenant`` from the accepting side
only: a value they would accept as it is passes; anything they would refuse, trim, coerce or
default differently falls through. The services called are the same ones, with the same arguments."""

from __future__ import annotations

import re

from django.conf import settings

from accounts.authentication import ApiPrincipal, principal_for
from lambdasite.exceptions import ApplicationError
from lambdasite.fasthttp import Answer, Request, in_thread, json_answer
from lambdasite.parsers import args_problem
from sandbox import RUNTIMES

from .. import completion, rendering, selectors
from ..services import submit
from .serializers import HANDLER_RE

_HANDLER = re.compile(HANDLER_RE)
_WAIT = re.compile(r"^\d{1,6}(\.\d{1,6})?$")
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_INT_MAX = 2**31 - 1
_LIMITS = {  # the serializers' min_value
    "timeout_ms": settings.JOB_MIN_TIMEOUT_MS,
    "memory_mb": settings.JOB_MIN_MEMORY_MB,
    "max_retries": 0,
}


def principal(request: Request, *, write: bool) -> ApiPrincipal | None:
    """The caller as DRF's authentication and HasTenant would admit it, or None (fall through)."""
    caller = principal_for(request.headers.get("authorization", ""), request.headers.get("x-api-key", ""))
    if caller is None or caller.tenant.is_suspended or (write and not caller.can_write):
        return None
    return caller


def wait_seconds(request: Request, allowed: set[str]) -> float | None:
    """``?wait=`` as WaitFilter reads it (0 when absent), or None when the query holds anything else."""
    if not set(request.query) <= allowed:
        return None
    raw = request.query.get("wait", "")
    if raw == "":
        return 0.0
    if not _WAIT.match(raw) or float(raw) > settings.WAIT_MAX_S:
        return None
    return float(raw)


def idempotency_key(request: Request) -> tuple[bool, str | None]:
    """(usable, the Idempotency-Key or None)."""
    key = request.headers.get("idempotency-key")
    return (key is None or 0 < len(key) <= 255), key


def limits(data: dict, into: dict) -> bool:
    """Copy the integer limits a body gives (strict integers at or over their minimum) into ``into``."""
    for name, minimum in _LIMITS.items():
        if name in data:
            value = data[name]
            if type(value) is not int or not (minimum <= value <= _INT_MAX):
                return False
            into[name] = value
    return True


def args_of(data: dict) -> list | None:
    """The body's ``args`` as the serializers accept it (the same ``args_problem``), or None."""
    if "args" not in data:
        return []
    args = data["args"]
    return args if args_problem(args) is None else None


_SUBMIT_FIELDS = {"runtime", "code", "args", "handler", *_LIMITS}


def _spec(data: dict) -> submit.JobSpec | None:
    if not set(data) <= _SUBMIT_FIELDS:
        return None  # unknown fields, run_at, delay_s, callback_url: the serializer's
    runtime, code, handler = data.get("runtime"), data.get("code"), data.get("handler", "main")
    if type(runtime) is not str or runtime not in RUNTIMES:
        return None
    if type(code) is not str or not code.strip() or "\x00" in code:
        return None
    if type(handler) is not str or not _HANDLER.match(handler) or handler != handler.strip():
        return None
    fields = {"runtime": runtime, "code": code, "handler": handler}
    if (args := args_of(data)) is None or not limits(data, fields):
        return None
    if "args" in data:
        fields["args"] = args
    return submit.JobSpec(**fields)


def accepted(job, created: bool) -> tuple[Answer, str | None]:
    """A created job's 202 (and its id for a wait), or an idempotent replay's 200 with its detail."""
    if not created:
        return json_answer(200, rendering.job_detail_body(job, job.attempt_set.all())), None
    body = rendering.job_body(job)
    return json_answer(202, body, headers=[(b"location", body["links"]["self"].encode())]), body["id"]


async def with_wait(answer: Answer, job_id: str | None, tenant_id, wait: float) -> Answer:
    """Hold a 202 until the job finishes or ``wait`` seconds pass, as ``jobs.wait_for_job`` does."""
    if job_id is None or wait <= 0:
        return answer
    finished = await completion.wait_finished(job_id, min(wait, settings.WAIT_MAX_S))
    if not finished:
        return answer
    # the 202's headers stay (its Location), as on the DRF view's answer
    if isinstance(finished, bytes):  # the finishing worker's body, rendered as the API renders it
        return Answer(200, finished, answer.headers)
    body = await in_thread(_detail_body, tenant_id, job_id)
    return json_answer(200, body, headers=answer.headers) if body is not None else answer


def _detail_body(tenant_id, job_id: str) -> dict | None:
    job = selectors.job_get(tenant_ids=[tenant_id], job_id=job_id)
    return rendering.job_detail_body(job, job.attempt_set.all()) if job is not None else None


async def submit_job(request: Request) -> Answer | None:
    """POST /api/v1/jobs."""
    wait = wait_seconds(request, {"wait"})
    usable, key = idempotency_key(request)
    data = request.json_object()
    spec = _spec(data) if data is not None else None
    if wait is None or not usable or spec is None:
        return None
    return await accept_with(
        request,
        wait,
        lambda caller: submit.job_submit(
            tenant=caller.tenant, api_key=caller.api_key, spec=spec, idempotency_key=key
        ),
    )


async def accept_with(request: Request, wait: float, service) -> Answer | None:
    """``service(caller)`` (a submit, an invocation: -> (job, created)) for the request's caller on a
    database thread, then the answer held for ``wait`` seconds. None falls through: no usable caller,
    or the service refused (it raises before anything commits: the DRF view gives the same refusal)."""
    done = await in_thread(_accept, request, service)
    if done is None:
        return None
    answer, job_id, tenant_id = done
    return await with_wait(answer, job_id, tenant_id, wait)


def _accept(request: Request, service):
    caller = principal(request, write=True)
    if caller is None:
        return None
    try:
        job, created = service(caller)
    except ApplicationError:
        return None
    answer, job_id = accepted(job, created)
    return answer, job_id, caller.tenant.id


async def job_detail(request: Request, job_id: str) -> Answer | None:
    """GET /api/v1/jobs/{id}."""
    if request.query:
        return None
    body = await in_thread(_job_detail, request, job_id)
    return json_answer(200, body) if body is not None else None


def _job_detail(request: Request, job_id: str) -> dict | None:
    caller = principal(request, write=False)
    if caller is None:
        return None
    return _detail_body(caller.tenant.id, job_id)  # None (not found): the view's 404


JOB_ID = _UUID
