"""Deploying: a function and its first version, further versions, deletion. Versions are immutable;
one without dependencies is ready at once, one with dependencies is built by a worker."""

from __future__ import annotations

import dataclasses
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.guards import tenant_deploy, tenant_require_active
from accounts.models import Tenant
from jobs import policy
from jobs.models import FINISHED, Job
from jobs.placement import DEFAULT as DEFAULT_PLACEMENT
from jobs.placement import Placement
from jobs.runtimes import RUNTIME_INFO
from jobs.services import dispatch
from jobs.services.actions import job_cancel
from lambdasite.exceptions import ValidationFailed

from .. import validation
from ..exceptions import FunctionExists, FunctionLimit, VersionLimit
from ..models import BuildStatus, Function, FunctionVersion
from . import builds
from .flow import FlowSettings, flow_apply, flow_check
from .invoke import functions_changed

log = logging.getLogger("lambdasite.functions")


@dataclasses.dataclass(frozen=True)
class VersionSpec:
    code: str
    handler: str | None = None  # None: the function's current handler ("main" for a new one)
    requirements: str | None = None  # Python
    dependencies: dict | None = None  # Node
    timeout_ms: int | None = None
    memory_mb: int | None = None
    max_retries: int | None = None
    description: str | None = None
    # None: the previous version's (a new function's: none, {}, {})
    egress: str | list | None = None  # "none", "public" or a list of "host:port" patterns
    env: dict | None = None  # {NAME: value}
    secrets: dict | None = None  # {ENV_NAME: secret name}
    durable: bool | None = None  # its invocations are durable runs (None: the previous version's)


def _check_reach(tenant: Tenant, spec: VersionSpec) -> VersionSpec:
    """The version's egress (within the tenant's ``max_egress``), env and secret bindings, normalised
    (``jobs.policy``: the rule inline jobs follow too); every bound secret must be one the tenant has."""
    reach = policy.reach_check(
        tenant=tenant, egress_value=spec.egress, env_value=spec.env, secrets_value=spec.secrets
    )
    return dataclasses.replace(spec, egress=reach.egress, env=reach.env, secrets=reach.secrets)


def _carried(function: Function, spec: VersionSpec) -> VersionSpec:
    """Egress, env and secrets not given are the latest version's: a new version of the code keeps
    what the function reaches and is given (give "none" or {} to drop them)."""
    if None not in (spec.egress, spec.env, spec.secrets, spec.durable):
        return spec
    latest = function.versions.order_by("-number").first()
    if latest is None:
        return spec
    return dataclasses.replace(
        spec,
        egress=latest.egress if spec.egress is None else spec.egress,
        env=latest.env if spec.env is None else spec.env,
        secrets=latest.secrets if spec.secrets is None else spec.secrets,
        durable=latest.durable if spec.durable is None else spec.durable,
    )


def _check_spec(tenant: Tenant, runtime: str, spec: VersionSpec, handler: str) -> VersionSpec:
    quota = tenant.quota
    if not spec.code.strip():
        raise ValidationFailed("code: may not be empty", details={"fields": {"code": ["may not be empty"]}})
    quota.check_code(spec.code)
    quota.check_limits(timeout_ms=spec.timeout_ms, memory_mb=spec.memory_mb, max_retries=spec.max_retries)
    requirements, dependencies = "", {}
    if runtime == "python":
        if spec.dependencies:
            raise ValidationFailed(
                "dependencies: Python functions list requirements (requirements.txt lines)",
                details={"fields": {"dependencies": ["use requirements for Python"]}},
            )
        requirements = validation.requirements(spec.requirements or "")
    else:
        if spec.requirements:
            raise ValidationFailed(
                "requirements: Node functions list dependencies (package.json's dependencies object)",
                details={"fields": {"requirements": ["use dependencies for Node"]}},
            )
        dependencies = validation.dependencies(spec.dependencies or {})
    spec = _check_reach(tenant, spec)
    return dataclasses.replace(
        spec,
        handler=validation.handler_name(runtime, handler),
        requirements=requirements,
        dependencies=dependencies,
    )


def _new_version(function: Function, spec: VersionSpec, user) -> FunctionVersion:
    """Insert the next version (the caller holds the function's row lock)."""
    version = FunctionVersion(
        function=function,
        number=function.latest_number + 1,
        code=spec.code,
        handler=spec.handler,
        requirements=spec.requirements,
        dependencies=spec.dependencies,
        description=spec.description if spec.description is not None else function.description,
        timeout_ms=spec.timeout_ms,
        memory_mb=spec.memory_mb,
        max_retries=spec.max_retries,
        egress_mode="allowlist" if isinstance(spec.egress, list) else spec.egress,
        egress_allow=spec.egress if isinstance(spec.egress, list) else [],
        env=spec.env,
        secrets=spec.secrets,
        durable=bool(spec.durable),
        created_by=user,
    )
    if not version.has_dependencies:  # nothing to build: ready now
        version.status = BuildStatus.READY
        version.content_hash = version.hash_with("")
        version.built_at = timezone.now()
    version.save(force_insert=True)
    function.latest_number = version.number
    function.handler = version.handler
    function.description = version.description
    function.timeout_ms, function.memory_mb, function.max_retries = (
        spec.timeout_ms,
        spec.memory_mb,
        spec.max_retries,
    )
    function.save()
    functions_changed(function.tenant_id, function.name)
    if version.status == BuildStatus.BUILDING:
        version_id = version.pk
        transaction.on_commit(lambda: builds.build_enqueue(version_id=version_id))
    log.info(
        "version created",
        extra={
            "event": "version_created",
            "function": function.name,
            "version": version.number,
            "tenant": function.tenant.slug,
        },
    )
    return version


def function_create(
    *,
    tenant: Tenant,
    user,
    name: str,
    runtime: str,
    spec: VersionSpec,
    provisioned: int = 0,
    flow: FlowSettings | None = None,
    placement: Placement | None = None,
) -> tuple[Function, FunctionVersion]:
    """A new function and its version 1, with its flow-control settings and placement (None: the
    default pool). -> (function, version)"""
    validation.function_name(name)
    if runtime not in RUNTIME_INFO:
        raise ValidationFailed(
            f"runtime: must be one of {', '.join(RUNTIME_INFO)}",
            details={"fields": {"runtime": ["unknown runtime"]}},
        )
    spec = _check_spec(tenant, runtime, spec, spec.handler or "main")
    quota = tenant.quota
    placement = placement or DEFAULT_PLACEMENT
    quota.check_pools(placement.names())
    _check_provisioned(tenant, provisioned, exclude=None)
    tenant_deploy(tenant)
    try:
        with transaction.atomic():
            if Function.objects.filter(tenant=tenant).count() >= quota.max_functions:
                raise FunctionLimit(
                    f"this tenant has {quota.max_functions} functions, its cap: delete one, or ask an "
                    "operator to raise max_functions",
                    details={"quota": "max_functions", "limit": quota.max_functions},
                )
            function = Function(
                tenant=tenant,
                name=name,
                runtime=runtime,
                handler=spec.handler,
                provisioned=provisioned,
                created_by=user,
                **placement.function_columns(),
            )
            flow_apply(function=function, settings=flow_check(tenant=tenant, settings=flow or FlowSettings()))
            function.save(force_insert=True)
            version = _new_version(function, spec, user)
    except IntegrityError:
        raise FunctionExists(f"a function named {name} exists; deploy a new version of it instead") from None
    return function, version


def version_create(*, function: Function, user, spec: VersionSpec) -> FunctionVersion:
    """The next version of a function (settings not given are the function's current ones)."""
    spec = _carried(function, spec)
    spec = _check_spec(function.tenant, function.runtime, spec, spec.handler or function.handler)
    cap = function.tenant.quota.max_versions_per_function
    if FunctionVersion.objects.filter(function=function).count() >= cap:
        raise VersionLimit(
            f"{function.name} has {cap} versions, this tenant's cap: deploy under a new name, or ask an "
            "operator to raise max_versions_per_function",
            details={"quota": "max_versions_per_function", "limit": cap},
        )
    tenant_deploy(function.tenant)
    with transaction.atomic():
        locked = Function.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=function.pk)
        return _new_version(locked, spec, user)


def _check_provisioned(tenant: Tenant, provisioned: int, *, exclude) -> None:
    if provisioned < 0:
        raise ValidationFailed(
            "provisioned: may not be negative", details={"fields": {"provisioned": ["min 0"]}}
        )
    others = Function.objects.filter(tenant=tenant, is_disabled=False)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    used = sum(others.values_list("provisioned", flat=True))
    cap = tenant.quota.max_provisioned_cells
    if used + provisioned > cap:
        raise FunctionLimit(
            f"provisioned: {used + provisioned} warm cells in all would be over this tenant's cap of {cap}",
            details={"quota": "max_provisioned_cells", "limit": cap, "used": used},
        )


def function_update(
    *,
    function: Function,
    provisioned: int | None = None,
    description: str | None = None,
    placement: Placement | None = None,
    **flow_given,
) -> Function:
    """Settings that are not part of a version: the warm pool size, the description, the placement of
    its jobs from now on (None: unchanged), and flow control (``flow_given``: max_concurrency,
    reserved_concurrency, concurrency_key, concurrency_per_key; left out: unchanged; None clears)."""
    tenant_require_active(function.tenant)
    with transaction.atomic():
        function = (
            Function.objects.select_for_update(of=("self",))
            .select_related("tenant__quota")
            .get(pk=function.pk)
        )
        if provisioned is not None:
            _check_provisioned(function.tenant, provisioned, exclude=function.pk)
            function.provisioned = provisioned
        if description is not None:
            function.description = description
        if placement is not None:
            function.tenant.quota.check_pools(placement.names())
            for name, value in placement.function_columns().items():
                setattr(function, name, value)
        if flow_given:
            settings = FlowSettings.of(function).changed(**flow_given)
            flow_apply(
                function=function,
                settings=flow_check(tenant=function.tenant, settings=settings, exclude=function.pk),
            )
            # a raised ceiling or a new key may free slots now, not at the next job's end
            dispatch.fill_after_commit(function.tenant_id)
        function.save()
        functions_changed(function.tenant_id, function.name)
    return function


def function_delete(*, function: Function) -> int:
    """Delete a function, its versions and aliases; its unfinished jobs are cancelled (finished jobs
    stay, naming the function and version they ran). -> how many jobs were cancelled."""
    cancelled = 0
    for job in Job.objects.filter(function=function).exclude(status__in=FINISHED):
        job_cancel(job=job)
        cancelled += 1
    with transaction.atomic():
        Function.objects.filter(pk=function.pk).delete()
        functions_changed(function.tenant_id, function.name)
    log.info(
        "function deleted",
        extra={"event": "function_deleted", "function": function.name, "cancelled": cancelled},
    )
    return cancelled


def function_set_disabled(*, function: Function, disabled: bool, reason: str = "") -> Function:
    """Operators stop a function from being invoked (its versions and jobs stay)."""
    Function.objects.filter(pk=function.pk).update(
        is_disabled=disabled, disabled_reason=reason[:200] if disabled else ""
    )
    functions_changed(function.tenant_id, function.name)
    function.refresh_from_db()
    return function
