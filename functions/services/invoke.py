"""Invoking a function by name: pick the version (latest ready, a number, or an alias with its canary
weight), then submit a job that runs as that version. A version still building holds the job until
its build ends; a failed version is refused."""

from __future__ import annotations

import random
from collections.abc import Callable

from accounts.models import ApiKey, Tenant
from jobs.models import Job
from jobs.services import submit

from ..exceptions import AliasNotFound, FunctionDisabled, FunctionNotFound, VersionFailed, VersionNotFound
from ..models import BuildStatus, Function, FunctionVersion
from ..selectors import alias_get, function_get, latest_ready


def version_resolve(
    *, function: Function, qualifier: str | None, rand: Callable[[], float] = random.random
) -> tuple[FunctionVersion, str]:
    """The version a call runs as, and the alias it came through ("" for none). -> (version, alias)"""
    if not qualifier or qualifier == "latest":
        version = latest_ready(function=function)
        if version is None:  # none ready yet: the newest, so a call right after deploying waits for it
            version = function.versions.order_by("-number").first()
        if version is None:
            raise VersionNotFound(f"{function.name} has no versions")
        return version, ""
    if qualifier.isdigit():
        version = function.versions.filter(number=int(qualifier)).first()
        if version is None:
            raise VersionNotFound(f"{function.name} has no version {qualifier}")
        return version, ""
    alias = alias_get(function=function, name=qualifier)
    if alias is None:
        raise AliasNotFound(f"{function.name} has no alias {qualifier!r}")
    if alias.additional_version is not None and rand() < alias.additional_weight:
        return alias.additional_version, alias.name
    return alias.version, alias.name


def invocation_spec(
    *,
    tenant: Tenant,
    name: str,
    qualifier: str | None,
    args: list,
    timeout_ms: int | None = None,
    memory_mb: int | None = None,
) -> submit.JobSpec:
    """The job an invocation submits (raises 404 for an unknown function, 409 for a failed version)."""
    function = function_get(tenant_ids=[tenant.id], name=name)
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
        function_id=function.pk,
        version_id=version.pk,
        function_name=function.name,
        version_number=version.number,
        alias=alias,
        held=version.status == BuildStatus.BUILDING,
        invoked_as=f"{name}:{qualifier or ''}",
    )


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
) -> tuple[Job, bool]:
    """Submit an invocation. -> (job, created): a repeated Idempotency-Key gets the first job."""
    spec = invocation_spec(
        tenant=tenant,
        name=name,
        qualifier=qualifier,
        args=args or [],
        timeout_ms=timeout_ms,
        memory_mb=memory_mb,
    )
    return submit.job_submit(tenant=tenant, api_key=api_key, spec=spec, idempotency_key=idempotency_key)
