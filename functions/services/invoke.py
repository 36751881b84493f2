"""Invoking a function by name: pick the version (latest ready, a number, or an alias with its canary
weight), then submit a job that runs as that version. A version still building holds the job until
its build ends; a failed version is refused.

The name lookup is on every invocation's path, so each web process keeps what it read (the
function, its latest ready and newest versions, its aliases, the versions asked for by number) and
reuses it while the tenant's generation counter in Redis is unchanged; every change that could
alter a lookup (a deploy, a build's end, an alias, a disable, a delete) bumps it after its commit.
One Redis GET instead of three queries; without Redis, the database is read every time."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from accounts.models import ApiKey, Tenant
from jobs import concurrency_key, events
from jobs.models import DEFAULT_PRIORITY, Job
from jobs.placement import DEFAULT as DEFAULT_PLACEMENT
from jobs.placement import Placement
from jobs.services import submit
from lambdasite.caching import Cache, after_commit
from lambdasite.parsers import qualifier_problem
from lambdasite.redis_client import generation, get_redis

from ..exceptions import AliasNotFound, FunctionDisabled, FunctionNotFound, VersionFailed, VersionNotFound
from ..models import Alias, BuildStatus, Function, FunctionVersion

GENERATION_KEY = "lambdasite:functions-gen:{}"


@dataclass(frozen=True)
class VersionView:
    id: int
    number: int
    status: str
    handler: str
    timeout_ms: int | None
    memory_mb: int | None
    max_retries: int | None
    build_error: str
    egress: str | tuple  # what it reaches and is given, recorded on its jobs ("none", "public", patterns)
    env: dict
    secrets: dict
    durable: bool = False  # its jobs are durable runs

    @classmethod
    def of(cls, version: FunctionVersion | None) -> VersionView | None:
        if version is None:
            return None
        return cls(
            version.pk,
            version.number,
            version.status,
            version.handler,
            version.timeout_ms,
            version.memory_mb,
            version.max_retries,
            version.build_error,
            tuple(version.egress) if isinstance(version.egress, list) else version.egress,
            dict(version.env),
            dict(version.secrets),
            version.durable,
        )


@dataclass
class FunctionView:
    """What a lookup needs of a function, as read at one generation of its tenant."""

    id: int
    name: str
    runtime: str
    is_disabled: bool
    disabled_reason: str
    latest_ready: VersionView | None
    newest: VersionView | None
    aliases: dict[str, tuple[VersionView, VersionView | None, float]]
    by_number: dict[int, VersionView | None] = field(default_factory=dict)
    key_steps: tuple = ()  # its concurrency_key parsed (jobs.concurrency_key): empty for none
    placement: Placement = DEFAULT_PLACEMENT  # where its jobs run unless one asks otherwise

    def key_of(self, args) -> str | None:
        """The concurrency key an invocation with these args gets (None: the function has no key)."""
        return concurrency_key.evaluate(self.key_steps, args) if self.key_steps else None

    def version(self, number: int) -> VersionView | None:
        if number not in self.by_number:
            self.by_number[number] = VersionView.of(
                FunctionVersion.objects.filter(function_id=self.id, number=number).first()
            )
        return self.by_number[number]


_views: Cache[FunctionView | None] = Cache()  # (tenant id, name) -> view, good while the generation is


def functions_changed(tenant_id, name: str = "") -> None:
    """After the current transaction commits: every process's lookups for the tenant are stale, and
    the pages showing the function ``name`` (if given) look again."""
    # a lost bump: processes that still read the generation keep their lookups until the next change
    # that reaches Redis (one that cannot read it caches nothing)
    after_commit("publishing a functions change", _bump, GENERATION_KEY.format(tenant_id))
    if name:
        after_commit(
            "telling pages of a function's change", events.function_changed, tenant_id=tenant_id, name=name
        )


def _bump(key: str) -> None:
    get_redis().incr(key)


def _generation(tenant_id) -> bytes | bool:
    """The tenant's generation, or False (no cache)."""
    return generation(GENERATION_KEY.format(tenant_id))


def _load(tenant_id, name: str) -> FunctionView | None:
    function = Function.objects.filter(tenant_id=tenant_id, name=name).first()
    if function is None:
        return None
    versions = FunctionVersion.objects.filter(function=function).order_by("-number")
    aliases = Alias.objects.filter(function=function).select_related("version", "additional_version")
    return FunctionView(
        id=function.pk,
        name=function.name,
        runtime=function.runtime,
        is_disabled=function.is_disabled,
        disabled_reason=function.disabled_reason,
        latest_ready=VersionView.of(versions.filter(status=BuildStatus.READY).first()),
        newest=VersionView.of(versions.first()),
        aliases={
            a.name: (VersionView.of(a.version), VersionView.of(a.additional_version), a.additional_weight)
            for a in aliases
        },
        key_steps=concurrency_key.parse(function.concurrency_key) if function.concurrency_key else (),
        placement=Placement.of(function),
    )


def function_view(*, tenant_id, name: str) -> FunctionView | None:
    return _views.get_or_load((tenant_id, name), lambda: _load(tenant_id, name), _generation(tenant_id))


def version_resolve(
    *, function: FunctionView, qualifier: str | None, rand: Callable[[], float] = random.random
) -> tuple[VersionView, str]:
    """The version a call runs as, and the alias it came through ("" for none). -> (version, alias)"""
    if not qualifier or qualifier == "latest":
        # none ready yet: the newest, so a call right after deploying waits for its build
        version = function.latest_ready or function.newest
        if version is None:
            raise VersionNotFound(f"{function.name} has no versions")
        return version, ""
    if qualifier.isascii() and qualifier.isdigit():
        version = function.version(int(qualifier)) if len(qualifier) < 10 else None
        if version is None:
            raise VersionNotFound(f"{function.name} has no version {qualifier}")
        return version, ""
    alias = function.aliases.get(qualifier)
    if alias is None:
        raise AliasNotFound(f"{function.name} has no alias {qualifier!r}")
    main, extra, weight = alias
    if extra is not None and rand() < weight:
        return extra, qualifier
    return main, qualifier


def qualifier_refusal(*, function: Function, qualifier: str) -> str | None:
    """Why ``qualifier`` names nothing ``function`` has, or None: the check a route or a schedule
    makes when it is saved, so that what it stores is what its invocations will resolve. The same
    rule as theirs (``qualifier_problem``'s shape, then ``version_resolve``), read from the database
    rather than the lookup cache: an alias set a moment ago, or in this very transaction, counts.
    Blank (the latest ready version) names something by definition."""
    if not qualifier:
        return None
    if (problem := qualifier_problem(qualifier)) is not None:
        return problem
    try:
        version_resolve(function=_load(function.tenant_id, function.name), qualifier=qualifier)
    except (AliasNotFound, VersionNotFound) as exc:
        return exc.message
    return None


def invocation_spec(
    *,
    tenant: Tenant,
    name: str,
    qualifier: str | None,
    args: list,
    timeout_ms: int | None = None,
    memory_mb: int | None = None,
    run_at=None,
    delay_s: int | None = None,
    callback_url: str = "",
    priority: int | None = None,
    placement: Placement | None = None,
) -> submit.JobSpec:
    """The job an invocation submits (raises 404 for an unknown function, 409 for a failed version)."""
    function = function_view(tenant_id=tenant.id, name=name)
    if function is None:
        raise FunctionNotFound(f"no function named {name}")
    if function.is_disabled:
        reason = f": {function.disabled_reason}" if function.disabled_reason else ""
        raise FunctionDisabled(f"{name} is disabled by an operator{reason}")
    version, alias = version_resolve(function=function, qualifier=qualifier)
    if version.status == BuildStatus.FAILED:
        raise VersionFailed(
            f"version {version.number} of {name} failed to build: {version.build_error[:2000]}",
            details={"version": version.number, "build_error": version.build_error[:8000]},
        )
    return submit.JobSpec(
        runtime=function.runtime,
        code="",
        args=args,
        handler=version.handler,
        timeout_ms=timeout_ms if timeout_ms is not None else version.timeout_ms,
        memory_mb=memory_mb if memory_mb is not None else version.memory_mb,
        max_retries=version.max_retries,
        function_id=function.id,
        version_id=version.id,
        function_name=function.name,
        version_number=version.number,
        alias=alias,
        held=version.status == BuildStatus.BUILDING,
        invoked_as=f"{name}:{qualifier or ''}",
        run_at=run_at,
        delay_s=delay_s,
        callback_url=callback_url or "",
        egress=list(version.egress) if isinstance(version.egress, tuple) else version.egress,
        env=version.env,
        secrets=version.secrets,
        durable=version.durable,
        priority=priority if priority is not None else DEFAULT_PRIORITY,
        concurrency_key=function.key_of(args),
        placement=placement,
        function_placement=function.placement,
    )


def child_specs(
    *, tenant: Tenant, function: str, qualifier: str | None, calls: list[list]
) -> list[submit.JobSpec]:
    """The invocations a durable run's ``invoke`` or ``map`` step starts, one per argument list (an
    alias's canary drawn per call); raises the invocation's 404/409 errors as a call would."""
    return [invocation_spec(tenant=tenant, name=function, qualifier=qualifier, args=args) for args in calls]


def function_invoke(
    *,
    tenant: Tenant,
    api_key: ApiKey | None,
    name: str,
    qualifier: str | None = None,
    args: list | None = None,
    timeout_ms: int | None = None,
    memory_mb: int | None = None,
    idempotency_key: str | None = None,
    origin: submit.Origin | None = None,
    priority: int | None = None,
    placement: Placement | None = None,
    **when,
) -> tuple[Job, bool]:
    """Submit an invocation. -> (job, created): a repeated Idempotency-Key gets the first job.
    ``when``: ``run_at`` or ``delay_s`` for a delayed run, ``callback_url`` for a one-off webhook;
    ``origin``: who asked for it (by default the API key); ``priority``: 0-9 (default 5);
    ``placement``: where to run (None: the function's)."""
    spec = invocation_spec(
        tenant=tenant,
        name=name,
        qualifier=qualifier,
        args=args or [],
        timeout_ms=timeout_ms,
        memory_mb=memory_mb,
        priority=priority,
        placement=placement,
        **when,
    )
    return submit.job_submit(
        tenant=tenant, api_key=api_key, spec=spec, idempotency_key=idempotency_key, origin=origin
    )
