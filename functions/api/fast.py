"""Invoking a function by name on the fast path (see ``lambdasite/fasthttp.py`` and
``jobs/api/fast.py``): ``None`` hands the request to ``views.invoke``, which answers everything
the fast path is not sure of, every error included."""

from __future__ import annotations

from jobs.api.fast import accept_with, args_of, idempotency_key, limits, wait_seconds
from lambdasite.fasthttp import Answer, Request

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
    return await accept_with(
        request,
        wait,
        lambda caller: invoking.function_invoke(
            tenant=caller.tenant,
            api_key=caller.api_key,
            name=name,
            qualifier=qualifier or None,
            idempotency_key=key,
            args=args,
            **fields,
        ),
    )
