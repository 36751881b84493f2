"""What workers run for functions: builds (queue ``<jobs>-builds``), and the warm cells their pool
keeps (``provisioned_specs`` is the pool's provision source, ``ProvisionWatch`` tells it when a
warm-up was asked for)."""

from __future__ import annotations

import logging

from django.db import close_old_connections

import sandbox
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
    timeout_ms = version.timeout_ms or quota.default_timeout_ms()
    memory_mb = version.memory_mb or quota.default_memory_mb()
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


def provisioned_specs(*, pools: list[str] | None = None) -> list[tuple[sandbox.RunSpec, int]]:
    """The pool's provision source (called from its maintenance thread): the cells of the functions
    placed in the worker ``pools`` this worker serves (None: every function, shared by all workers)."""
    try:
        me = worker_name().replace(":", "-")  # as the worker command names its RQ worker
        found = warm.provisioned_versions(me=me, pools=pools)
        return [(version_spec(version), n) for version, n in found]
    except Exception:  # noqa: BLE001 - keep the last targets; the next pass reads again
        log.exception("reading provisioned functions failed")
        raise
    finally:
        close_old_connections()


class ProvisionWatch:
    """The pool's ``provision_changed``: true when a warm-up was asked for since the last look."""

    def __init__(self) -> None:
        self.seen = None

    def __call__(self) -> bool:
        try:
            generation = warm.provision_generation()
        except Exception:  # noqa: BLE001 - Redis away: the periodic re-read still happens
            return False
        changed, self.seen = generation != self.seen, generation
        return changed
