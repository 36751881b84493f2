"""Warm cells for functions: ``POST …/warm`` asks workers to start cells now; a function's
``provisioned`` count is kept ready by every worker's pool (its share), for the latest ready version."""

from __future__ import annotations

import math

from django.conf import settings
from rq import Worker

from lambdasite.exceptions import ValidationFailed
from lambdasite.redis_client import get_queue

from ..exceptions import VersionNotFound
from ..models import Function, FunctionVersion
from ..selectors import latest_ready


def warm_request(*, function: Function, count: int = 1) -> tuple[FunctionVersion, int]:
    """Queue ``count`` warm-ups of the latest ready version; each worker that takes one starts a cell
    and initialises the module. -> (version, queued)"""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= settings.FUNCTION_WARM_MAX:
        raise ValidationFailed(
            f"count: must be 1 to {settings.FUNCTION_WARM_MAX}",
            details={"fields": {"count": ["out of range"]}},
        )
    version = latest_ready(function=function)
    if version is None:
        raise VersionNotFound(f"{function.name} has no ready version to warm")
    queue = get_queue()
    for _ in range(count):
        queue.enqueue(
            "functions.tasks.warm_version",
            version.pk,
            job_timeout=120,
            result_ttl=0,
            failure_ttl=600,
            at_front=True,
            description=f"lambdasite warm {function.name} v{version.number}",
        )
    return version, count


def provisioned_versions(*, workers: int | None = None) -> list[tuple[FunctionVersion, int]]:
    """What one worker keeps warm: for each enabled function with ``provisioned`` cells, the latest
    ready version and this worker's share (the count over the live workers, rounded up)."""
    if workers is None:
        queue = get_queue()
        workers = Worker.count(connection=queue.connection, queue=queue)
    workers = max(workers, 1)
    wanted = Function.objects.filter(provisioned__gt=0, is_disabled=False, tenant__is_suspended=False)
    out = []
    for function in wanted.select_related("tenant__quota"):
        version = latest_ready(function=function)
        if version is not None:
            out.append((version, math.ceil(function.provisioned / workers)))
    return out
