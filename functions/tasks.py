"""What workers run for functions: builds (queue ``<jobs>-builds``), warm-ups, and the provisioned
cells their pool keeps (``provisioned_specs`` is the pool's provision source)."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import close_old_connections

import sandbox
from accounts.models import UsageCharge
from jobs import billing
from jobs.execution import limits_for, sandbox_uid, worker_name

from .models import FunctionVersion
from .services import builds, warm

log = logging.getLogger("lambdasite.functions")


def build_version(version_id) -> None:
    builds.version_build(version_id=version_id, worker=worker_name())


def version_spec(version: FunctionVersion) -> sandbox.RunSpec:
    """The spec an invocation of ``version`` with its default limits runs with (same cell key)."""
    function = version.function
    quota = function.tenant.quota
    timeout_ms = version.timeout_ms or min(settings.JOB_DEFAULT_TIMEOUT_MS, quota.max_timeout_ms)
    memory_mb = version.memory_mb or min(settings.JOB_DEFAULT_MEMORY_MB, quota.max_memory_mb)
    return sandbox.RunSpec(
        runtime=function.runtime,
        code="",
        limits=limits_for(quota, timeout_ms=timeout_ms, memory_mb=memory_mb),
        tenant=str(function.tenant_id),
        uid=sandbox_uid(function.tenant_id),
        function=sandbox.FunctionRef(
            key=f"v{version.pk}-{version.content_hash[:16]}",
            code=version.code,
            handler=version.handler,
            layer=version.layer.volume if version.layer_id else None,
        ),
    )


def warm_version(version_id) -> dict | None:
    version = FunctionVersion.objects.select_related("function__tenant__quota", "layer").get(pk=version_id)
    warm.warm_taken(version.function_id)
    function = version.function
    if function.is_disabled or function.tenant.is_suspended:
        return None  # disabled or suspended since it was asked for: no tenant code runs
    spec = version_spec(version)
    started = time.monotonic()
    try:
        error = sandbox.default().warm(spec)
    finally:
        # the cell's start and the module's initialisation are the tenant's, as a job's would be
        seconds = time.monotonic() - started
        billing.charge(
            tenant_id=function.tenant_id,
            kind=UsageCharge.Kind.WARM,
            gb_seconds=billing.gb_seconds(spec.limits.memory_mb, billing.billed_ms(seconds * 1000)),
            reference=f"warm version {version.pk}",
        )
    if error:
        log.warning(
            "warming failed: %s", error.get("message"), extra={"event": "warm_failed", "version": version_id}
        )
    return error


def provisioned_specs() -> list[tuple[sandbox.RunSpec, int]]:
    """The pool's provision source (called from its maintenance thread)."""
    try:
        me = worker_name().replace(":", "-")  # as the worker command names its RQ worker
        return [(version_spec(version), n) for version, n in warm.provisioned_versions(me=me)]
    except Exception:  # noqa: BLE001 - keep the last targets; the next pass reads again
        log.exception("reading provisioned functions failed")
        raise
    finally:
        close_old_connections()
