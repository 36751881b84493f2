import atexit

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from .metrics import LambdasiteCollector
        from .services import waits
        from .signals import job_outcome

        REGISTRY.register(LambdasiteCollector())
        # a durable run's end cancels its children; a child's end may resume its parent
        job_outcome.connect(waits.on_job_outcome, dispatch_uid="jobs.waits.job_outcome")
        atexit.register(close_database_pools)


def close_database_pools() -> None:
    """At exit, stop the psycopg pools' threads before the interpreter finalizes. A pool thread torn
    down while inside libpq (opening a connection, say) aborted the process with "FATAL: exception
    not rethrown" (about 1 run in 40 of a short command such as ``manage.py demo_setup``, which then
    failed ``make run``). Only pools that exist are closed: asking a connection for its pool creates one."""
    from django.db import connections

    for alias in connections:  # (every thread's wrappers share the pool: the class holds it by alias)
        conn = connections[alias]
        if alias in getattr(type(conn), "_connection_pools", {}):
            try:
                conn.close_pool()
            except Exception:  # noqa: BLE001, S110 - exiting anyway
                pass
