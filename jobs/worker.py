"""The RQ worker: runs jobs in-process so the sandbox's warm cells outlive each job.

RQ's default worker forks a work-horse per job, and anything the horse holds
(here: started containers) dies with it. Jobs already run in a container, so
the fork buys no isolation; a ``SimpleWorker`` keeps the cell pool in the
worker process for its whole life.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import close_old_connections
from rq.worker import SimpleWorker

import sandbox

log = logging.getLogger("lambdasite.worker")


def sandbox_configure() -> sandbox.Sandbox:
    """Build the process's cell pool from settings, with spares for the default profile of each runtime."""
    profile = sandbox.Limits(
        memory_mb=settings.JOB_DEFAULT_MEMORY_MB,
        cpus=settings.SANDBOX_CPUS,
        pids=settings.SANDBOX_PIDS,
        tmpfs_mb=settings.SANDBOX_TMPFS_MB,
        nofile=settings.SANDBOX_NOFILE,
        fsize_mb=settings.SANDBOX_FSIZE_MB,
    )
    pool = sandbox.configure(
        reuse=settings.SANDBOX_REUSE,
        idle_ttl_s=settings.SANDBOX_IDLE_TTL_S,
        max_idle_cells=settings.SANDBOX_MAX_IDLE_CELLS,
        spare_profiles=tuple((runtime, profile) for runtime in sandbox.RUNTIMES)
        if settings.SANDBOX_SPARES
        else (),
        spares_per_profile=settings.SANDBOX_SPARES,
        sweep_interval_s=settings.SANDBOX_SWEEP_INTERVAL_S,
        provision_interval_s=settings.PROVISION_INTERVAL_S,
    )
    return pool


class SandboxWorker(SimpleWorker):
    def perform_job(self, job, queue, *args, **kwargs):
        close_old_connections()
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            close_old_connections()


def relax_commit_durability() -> None:
    """Workers and the reconciler commit asynchronously (no WAL fsync wait per transaction).

    Safe for them: a PostgreSQL crash can lose only their last ~0.6 s of transitions,
    which puts a job back into an earlier state (claimed -> dispatched, finished ->
    running with a lease) that the reconciler resolves by running it again: still
    at-least-once, one visible outcome. The web process keeps synchronous commits,
    because a 202 promises the accepted job survives.
    """
    from django.db import connections

    if not settings.WORKER_ASYNC_COMMIT:
        return
    # a libpq startup option: set when each connection opens, no extra round trip per use
    # (call before the process's first query; the pool reads this when it is created)
    options = connections["default"].settings_dict.setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c synchronous_commit=off".strip()
