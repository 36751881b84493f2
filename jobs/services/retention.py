"""Bounded storage: a tenant's finished jobs, with their attempts, log lines and connections, are
deleted once they are older than the tenant's retention (``Quota.retention_days``; 0 keeps them
forever).

The reconciler calls ``jobs_purge`` on every pass with a small budget: each batch is one statement
that picks at most ``batch`` of the oldest expired jobs (``FOR UPDATE SKIP LOCKED``: a job some
other transaction holds is left for the next pass), deletes their log lines, connections, attempts
and the jobs themselves, and commits, so no lock is held for long and the database never sees a mass delete.
A schedule run that pointed at a purged job keeps its row (the foreign key sets it to NULL).
Idempotency keys go with their jobs. ``manage.py purge --dry-run`` counts what would go."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Quota

from ..models import FINISHED


def doomed(table: str, age_column: str) -> str:
    """The head of a purge statement: ``doomed``, the ids of at most ``%(batch)s`` of the tenant's
    finished rows of ``table`` older than ``%(before)s`` by ``age_column``, oldest first, locked (rows
    another transaction holds are skipped: the next pass takes them)."""
    return f"""
WITH doomed AS (
    SELECT id FROM {table}
    WHERE tenant_id = %(tenant)s AND status = ANY(%(finished)s) AND {age_column} < %(before)s
    ORDER BY {age_column}
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)"""


_PURGE_SQL = (
    doomed("jobs_job", "finished_at")
    + """, lines AS (
    DELETE FROM jobs_logline WHERE job_id IN (SELECT id FROM doomed) RETURNING 1
), connections AS (
    DELETE FROM jobs_connection WHERE job_id IN (SELECT id FROM doomed) RETURNING 1
), attempts AS (
    DELETE FROM jobs_attempt WHERE job_id IN (SELECT id FROM doomed) RETURNING 1
), steps AS (
    DELETE FROM jobs_step WHERE job_id IN (SELECT id FROM doomed) RETURNING 1
), jobs AS (
    DELETE FROM jobs_job WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM attempts), (SELECT count(*) FROM lines),
       (SELECT count(*) FROM connections)
"""
)

_COUNT_SQL = """
SELECT count(*),
       (SELECT count(*) FROM jobs_attempt a JOIN jobs_job j ON j.id = a.job_id
        WHERE j.tenant_id = %(tenant)s AND j.status = ANY(%(finished)s) AND j.finished_at < %(before)s),
       (SELECT count(*) FROM jobs_logline l JOIN jobs_job j ON j.id = l.job_id
        WHERE j.tenant_id = %(tenant)s AND j.status = ANY(%(finished)s) AND j.finished_at < %(before)s),
       (SELECT count(*) FROM jobs_connection c JOIN jobs_job j ON j.id = c.job_id
        WHERE j.tenant_id = %(tenant)s AND j.status = ANY(%(finished)s) AND j.finished_at < %(before)s)
FROM jobs_job
WHERE tenant_id = %(tenant)s AND status = ANY(%(finished)s) AND finished_at < %(before)s
"""


@dataclass
class Purged:
    jobs: int = 0
    attempts: int = 0
    log_lines: int = 0
    connections: int = 0
    by_tenant: dict = field(default_factory=dict)  # tenant slug -> jobs

    def add(self, slug: str, jobs: int, attempts: int, log_lines: int, connections: int = 0) -> None:
        self.jobs += jobs
        self.attempts += attempts
        self.log_lines += log_lines
        self.connections += connections
        if jobs:
            self.by_tenant[slug] = self.by_tenant.get(slug, 0) + jobs


def retention_cutoffs(now: datetime):
    """(tenant id, slug, the time before which its finished work goes) of every tenant that keeps it
    for a limited time."""
    rows = Quota.objects.filter(retention_days__gt=0).values_list(
        "tenant_id", "tenant__slug", "retention_days"
    )
    return [(tenant_id, slug, now - timedelta(days=days)) for tenant_id, slug, days in rows]


def purge_in_batches(sql: str, params: dict, *, batch: int, max_batches: int):
    """Run a purge statement (it takes at most ``%(batch)s`` rows and counts them first) in its own
    transaction, again until a batch comes back short or ``max_batches`` ran; yields each batch's counts."""
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, {**params, "batch": batch})
            counts = cursor.fetchone()
        yield counts
        if counts[0] < batch:
            return


def jobs_purge(
    *, now: datetime | None = None, batch: int = 500, max_batches: int = 10, dry_run: bool = False
) -> Purged:
    """Delete (or, with ``dry_run``, count) finished jobs older than their tenant's retention; at most
    ``max_batches`` batches of ``batch`` jobs per tenant in one call (the next pass continues)."""
    now = now or timezone.now()
    purged = Purged()
    for tenant_id, slug, before in retention_cutoffs(now):
        params = {"tenant": tenant_id, "finished": list(FINISHED), "before": before}
        if dry_run:
            with connection.cursor() as cursor:
                cursor.execute(_COUNT_SQL, params)
                purged.add(slug, *cursor.fetchone())
            continue
        for counts in purge_in_batches(_PURGE_SQL, params, batch=batch, max_batches=max_batches):
            purged.add(slug, *counts)
    return purged
