"""Invoking a function by name, once for both transports (``lambdasite/api/contract.py``): the DRF
view in ``views.py`` and the fast path (``lambdasite/asgi.py``) call this."""

from __future__ import annotations

from jobs.contract import job_reply
from lambdasite.api.contract import Call, Reply, idempotency_key, validated
from lambdasite.api.fields import QualifierField
from lambdasite.api.query import WaitFilter

from ..services import invoke as invoking
from .serializers import InvokeSerializer


class InvokeFilter(WaitFilter):
    """``?qualifier=`` (an alias or a version number) and ``?wait=`` as on submit."""

    qualifier = QualifierField(required=False, allow_blank=True, default="")


def invoke(call: Call, name: str) -> Reply:
    """POST /api/v1/functions/{name}/invoke: ``?qualifier``/``?wait``, the body and
    ``Idempotency-Key`` checked before anything is written; then the invocation service."""
    query = InvokeFilter.parse(call.query)
    # no body: no fields ({}); a body of null is refused, as submit and warm-up refuse it (the schema
    # says an object)
    fields = validated(InvokeSerializer, call.data)
    job, created = invoking.function_invoke(
        tenant=call.tenant,
        api_key=call.api_key,
        name=name,
        qualifier=query["qualifier"] or None,
        idempotency_key=idempotency_key(call),
        **fields,
    )
    return job_reply(job, created, wait=query["wait"])
