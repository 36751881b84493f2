"""Warm cells for functions: a function's ``provisioned`` count, and what ``POST …/warm`` asks for a
while, are kept ready by the workers' pools (each live worker its exact share), for the latest
ready version."""

from __future__ import annotations

import time

from django.conf import settings
from django.db.models import Q

from jobs import metrics
from jobs.pools import live_workers
from jobs.services.admission import tenant_admit
from lambdasite.exceptions import ValidationFailed
from lambdasite.redis_client import get_redis

from ..exceptions import FunctionDisabled, VersionNotReady
from ..models import Function, FunctionVersion
from ..selectors import latest_ready

BOOSTS_KEY = "lambdasite:warm:boosts"  # hash: function id -> "<cells>:<until, unix time>"
GENERATION_KEY = "lambdasite:provision:generation"  # bumped when what workers keep warm changes


def warm_request(*, function: Function, count: int = 1) -> tuple[FunctionVersion, int]:
    """Keep ``count`` cells of the latest ready version warm (module initialised) for the next
    FUNCTION_WARM_TTL_S, across the fleet. -> (version, count)

    A warm-up starts tenant code, so it is held to a job's rules: the tenant is admitted as for
    ``count`` submissions (suspension, budget, rate), a disabled function is refused, and each
    cell's start and initialisation is billed (the pool's ``on_warm``). It is a target, not a queue
    of tasks: the workers' pool threads start the cells in the background, never on the job loop
    (a warm-up never holds a worker another tenant's job waits for), and calling again only
    refreshes the target (at most FUNCTION_WARM_MAX cells however often it is called)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= settings.FUNCTION_WARM_MAX:
        raise ValidationFailed(
            f"count: must be 1 to {settings.FUNCTION_WARM_MAX}",
            details={"fields": {"count": ["out of range"]}},
        )
    if function.is_disabled:
        raise FunctionDisabled(f"{function.name} is disabled")
    version = latest_ready(function=function)
    if version is None:
        raise VersionNotReady(f"{function.name} has no ready version to warm yet")
    tenant_admit(tenant=function.tenant, count=count)
    until = time.time() + settings.FUNCTION_WARM_TTL_S
    conn = get_redis()
    with conn.pipeline() as pipe:
        pipe.hset(BOOSTS_KEY, str(function.pk), f"{count}:{until:.0f}")
        pipe.incr(GENERATION_KEY)
        pipe.execute()
    return version, count


def warm_boosts(*, now: float | None = None) -> dict[int, int]:
    """Function id -> cells asked for by a warm-up still in force (expired ones are removed)."""
    now = now if now is not None else time.time()
    conn = get_redis()
    boosts, expired = {}, []
    for field, value in conn.hgetall(BOOSTS_KEY).items():
        cells, _, until = value.decode().partition(":")
        if float(until or 0) < now:
            expired.append(field)
        else:
            boosts[int(field)] = int(cells)
    if expired:
        conn.hdel(BOOSTS_KEY, *expired)
    return boosts


def provision_generation() -> int:
    """Changes whenever a warm-up is asked for: workers read their targets again at once."""
    return int(get_redis().get(GENERATION_KEY) or 0)


def provisioned_share(n: int, *, workers: list[str], me: str, salt: int) -> int:
    """This worker's part of ``n`` cells spread over the live ``workers`` (the parts add up to ``n``
    exactly, the remainder going to different workers for different functions)."""
    if me not in workers:
        return 0  # not counted live yet: the others hold the cells meanwhile
    count = len(workers)
    place = (workers.index(me) - salt) % count
    return n // count + (1 if place < n % count else 0)


def provisioned_versions(
    *, me: str, workers: list[str] | None = None, pools: list[str] | None = None
) -> list[tuple[FunctionVersion, int]]:
    """What worker ``me`` keeps warm: for each enabled function with ``provisioned`` cells, the latest
    ready version and this worker's share, so the fleet holds exactly the tenant's cap, not cap x W.
    ``pools``: the worker pools ``me`` serves; only their functions, each shared among the live
    workers of its own pool (None: every function, shared among ``workers``)."""
    if workers is None and pools is None:
        workers = metrics.workers_alive_names("jobs")
    by_pool = live_workers() if pools is not None else {}
    boosts = warm_boosts()
    wanted = Function.objects.filter(
        Q(provisioned__gt=0) | Q(pk__in=list(boosts)), is_disabled=False, tenant__is_suspended=False
    )
    if pools is not None:
        wanted = wanted.filter(pool__in=pools)
    out = []
    for function in wanted.select_related("tenant__quota"):
        target = max(function.provisioned, boosts.get(function.pk, 0))
        sharing = workers if pools is None else by_pool.get(function.pool, [])
        share = provisioned_share(target, workers=sharing, me=me, salt=function.pk)
        if share <= 0:
            continue
        version = latest_ready(function=function)
        if version is not None:
            out.append((version, share))
    return out
