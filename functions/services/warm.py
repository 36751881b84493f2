"""Warm cells for functions: ``POST …/warm`` asks workers to start cells now; a function's
``provisioned`` count is kept ready by every worker's pool (its share), for the latest ready version."""

from __future__ import annotations

from django.conf import settings

from jobs import metrics
from jobs.services.admission import tenant_admit
from lambdasite.exceptions import RateLimited, ValidationFailed
from lambdasite.redis_client import get_queue, get_redis

from ..exceptions import FunctionDisabled, VersionNotFound
from ..models import Function, FunctionVersion
from ..selectors import latest_ready

WARM_TIMEOUT_S = 120


def _pending_key(function_id) -> str:
    return f"lambdasite:warm:pending:{function_id}"


def warm_request(*, function: Function, count: int = 1) -> tuple[FunctionVersion, int]:
    """Queue ``count`` warm-ups of the latest ready version; each worker that takes one starts a cell
    and initialises the module. -> (version, queued)

    A warm-up starts tenant code, so it is held to a job's rules: the tenant is admitted as for
    ``count`` submissions (suspension, budget, rate), a disabled function is refused, the cell's time
    is billed (``functions.tasks.warm_version``), and at most FUNCTION_WARM_MAX warm-ups of a function
    wait at once (more calls are refused, not queued). They queue behind jobs, never in front."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= settings.FUNCTION_WARM_MAX:
        raise ValidationFailed(
            f"count: must be 1 to {settings.FUNCTION_WARM_MAX}",
            details={"fields": {"count": ["out of range"]}},
        )
    if function.is_disabled:
        raise FunctionDisabled(f"{function.name} is disabled")
    version = latest_ready(function=function)
    if version is None:
        raise VersionNotFound(f"{function.name} has no ready version to warm")
    tenant_admit(tenant=function.tenant, count=count)
    conn = get_redis()
    key = _pending_key(function.pk)
    with conn.pipeline() as pipe:
        pipe.incrby(key, count)
        pipe.expire(key, WARM_TIMEOUT_S * 2)
        pending, _ = pipe.execute()
    if pending > settings.FUNCTION_WARM_MAX:
        conn.decrby(key, count)
        raise RateLimited(
            f"{pending - count} warm-ups of {function.name} are waiting already "
            f"(at most {settings.FUNCTION_WARM_MAX})",
            retry_after=5,
            code="warm_pending",
        )
    queue = get_queue()
    for _ in range(count):
        queue.enqueue(
            "functions.tasks.warm_version",
            version.pk,
            job_timeout=WARM_TIMEOUT_S,
            result_ttl=0,
            failure_ttl=600,
            description=f"lambdasite warm {function.name} v{version.number}",
        )
    return version, count


def warm_taken(function_id) -> None:
    """A worker took one of the function's warm-ups: one fewer is waiting."""
    try:
        get_redis().decr(_pending_key(function_id))
    except Exception:  # noqa: BLE001 - the key expires anyway
        pass


def provisioned_share(n: int, *, workers: list[str], me: str, salt: int) -> int:
    """This worker's part of ``n`` cells spread over the live ``workers`` (the parts add up to ``n``
    exactly, the remainder going to different workers for different functions)."""
    if me not in workers:
        return 0  # not counted live yet: the others hold the cells meanwhile
    count = len(workers)
    place = (workers.index(me) - salt) % count
    return n // count + (1 if place < n % count else 0)


def provisioned_versions(*, me: str, workers: list[str] | None = None) -> list[tuple[FunctionVersion, int]]:
    """What worker ``me`` keeps warm: for each enabled function with ``provisioned`` cells, the latest
    ready version and this worker's share, so the fleet holds exactly the tenant's cap, not cap x W."""
    if workers is None:
        workers = metrics.workers_alive_names("jobs")
    wanted = Function.objects.filter(provisioned__gt=0, is_disabled=False, tenant__is_suspended=False)
    out = []
    for function in wanted.select_related("tenant__quota"):
        share = provisioned_share(function.provisioned, workers=workers, me=me, salt=function.pk)
        if share <= 0:
            continue
        version = latest_ready(function=function)
        if version is not None:
            out.append((version, share))
    return out
