"""Invoking a function by name on the fast path (see ``lambdasite/fasthttp.py`` and
``jobs/api/fast.py``): ``None`` hands the request to ``views.invoke``, which answers everything
the fast path is not sure of, every error included."""

from __future__ import annotations

from jobs.api.fast import accepted, args_of, idempotency_key, limits, principal, wait_seconds, with_wait
from lambdasite.exceptions import ApplicationError
from lambdasite.fasthttp import Answer, Request, in_thread

from ..services import invoke as invoking

_INVOKE_FIELDS = {"args", "timeout_ms", "memory_mb"}  # run_at, delay_s, callback_url: the serializer's


async def invoke(request: Request, name: str) -> Answer | None:
    """POST /api/v1/functions/{name}/invoke."""
    wait = wait_seconds(request, {"wait", "qualifier"})
    qualifier = request.query.get("qualifier", "")
    usable, key = idempotency_key(request)
    data = request.json_object()
    if wait is None or not usable or data is None or not set(data) <= _INVOKE_FIELDS:
        return None
    if len(qualifier) > 64 or qualifier != qualifier.strip() or "\x00" in qualifier:
        return None
    fields: dict = {}
    if (args := args_of(data)) is None or not limits(data, fields):
        return None
    done = await in_thread(_invoke, request, name, qualifier or None, args, fields, key)
    if done is None:
        return None
    answer, job_id, tenant_id = done
    return await with_wait(answer, job_id, tenant_id, wait)


def _invoke(request: Request, name: str, qualifier, args: list, fields: dict, key):
    caller = principal(request, write=True)
    if caller is None:
        return None
    try:
        job, created = invoking.function_invoke(
            tenant=caller.tenant,
            api_key=caller.api_key,
            name=name,
            qualifier=qualifier,
            idempotency_key=key,
            args=args,
            **fields,
        )
    except ApplicationError:
        return None  # refused before anything was written: the DRF view gives the same refusal
    answer, job_id = accepted(job, created)
    return answer, job_id, caller.tenant.id
