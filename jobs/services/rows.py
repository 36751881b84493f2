"""The job row's hot statements, written by hand: the claim, the lease renewal, the locked read of a
job with its tenant, and the finish's write of an attempt and its job. Compiling the ORM's queries for
these cost more CPU than PostgreSQL's work; values are still adapted by the models' own fields, and
columns are named, never ``*`` (a prepared statement's result type may not change under a migration).
What the statements mean (the fence, the retry policy, billing) is ``lifecycle``'s."""

from __future__ import annotations

import functools

from django.db import connection

from accounts.models import Quota, Tenant

from ..models import Attempt, Job

# The claim: the compare-and-set, the lease, the queue wait and the new attempt's row in one statement
# (one round trip, atomic on its own: no BEGIN/COMMIT around it). Columns are named, never ``*``: a
# prepared statement whose result type changed (a column added by a migration) would fail.
_CLAIM_SQL = """
WITH claimed AS (
    UPDATE jobs_job SET status = %(running)s, attempts = attempts + 1, started_at = %(now)s,
        worker = %(worker)s, lease_expires_at = %(lease)s,
        queue_wait_ms = COALESCE(queue_wait_ms, EXTRACT(EPOCH FROM (%(now)s - created_at)) * 1000.0)
    WHERE id = %(id)s AND status IN (%(queued)s, %(dispatched)s) AND NOT cancel_requested
    RETURNING {columns}
), opened AS (
    INSERT INTO jobs_attempt (job_id, number, status, worker, container_id, started_at, billed_ms, gb_seconds)
    SELECT id, attempts, %(running)s, %(worker)s, '', %(now)s, 0, 0.0 FROM claimed
    RETURNING id AS attempt_pk
)
SELECT claimed.*, {tenant_columns}, {quota_columns}, opened.attempt_pk
FROM claimed JOIN accounts_tenant t ON t.id = claimed.tenant_id
LEFT JOIN accounts_quota q ON q.tenant_id = claimed.tenant_id, opened
"""


@functools.cache
def claim_sql() -> str:
    """The claim, returning the job's columns, its tenant's and its quota's (each in the models' field
    order; the quota's all NULL for a tenant without one), then the attempt's id: the limits a worker
    runs the job under are read in the claim itself, never older than it (a cache per tenant missed
    on every job once more tenants were active than it kept fresh)."""
    return _CLAIM_SQL.format(
        columns=", ".join(f.column for f in Job._meta.concrete_fields),
        tenant_columns=", ".join(f"t.{f.column}" for f in Tenant._meta.concrete_fields),
        quota_columns=", ".join(f"q.{f.column}" for f in Quota._meta.concrete_fields),
    )


def job_from_claim(row) -> Job:
    """The claimed job, with its tenant and the tenant's quota, from a row of ``claim_sql``."""
    jobs, tenants = len(Job._meta.concrete_fields), len(Tenant._meta.concrete_fields)
    job = model_from_values(Job, row[:jobs])
    job.tenant = model_from_values(Tenant, row[jobs : jobs + tenants])
    quota = row[jobs + tenants : jobs + tenants + len(Quota._meta.concrete_fields)]
    if quota[0] is not None:  # no quota row: tenant.quota raises, as the ORM's read would
        job.tenant.quota = model_from_values(Quota, quota)
    return job


# every lease of a worker process in one statement (hundreds of attempts in flight: one round trip per
# tick, not one per attempt), the rows locked in id order so that it never deadlocks with another writer
RENEW_MANY_SQL = """
WITH ours AS (
    SELECT j.id FROM jobs_job j
    JOIN unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS l(id, attempt)
        ON j.id = l.id AND j.attempts = l.attempt
    WHERE j.status = %(running)s
    ORDER BY j.id
    FOR NO KEY UPDATE OF j
)
UPDATE jobs_job SET lease_expires_at = %(lease)s FROM ours WHERE jobs_job.id = ours.id
RETURNING jobs_job.id, jobs_job.cancel_requested
"""


def locked_job(job_id, *, skip_locked: bool = False, durable: bool = False, **conditions) -> Job | None:
    """The job's row under a lock that serializes every writer of the job and its attempts.

    NO KEY UPDATE of the job row only: a FOR UPDATE that also locked the tenant (through
    select_related) would serialize every finish with every submit's foreign-key check. Without
    conditions (every finish takes this path) one prepared-shape statement, not the ORM: compiling
    the queryset cost more CPU than PostgreSQL's work. ``durable``: the same statement makes this
    transaction's commit synchronous (notify.commit_durably without its own round trip)."""
    if conditions or skip_locked:
        rows = Job.objects.select_for_update(of=("self",), no_key=True, skip_locked=skip_locked)
        return rows.select_related("tenant").filter(pk=job_id, **conditions).first()
    with connection.cursor() as cursor:
        cursor.execute(_locked_job_sql(durable), [job_id])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(Job._meta.concrete_fields)
    row = row[: split + len(Tenant._meta.concrete_fields)]
    job = model_from_values(Job, row[:split])
    job.tenant = model_from_values(Tenant, row[split:])
    return job


@functools.cache
def _locked_job_sql(durable: bool = False) -> str:
    """The job's columns, then its tenant's, each in the models' field order."""
    columns = [f"j.{f.column}" for f in Job._meta.concrete_fields]
    columns += [f"t.{f.column}" for f in Tenant._meta.concrete_fields]
    if durable:
        columns.append("set_config('synchronous_commit', 'on', true)")
    return (
        f"SELECT {', '.join(columns)} FROM jobs_job j JOIN accounts_tenant t ON t.id = j.tenant_id"
        " WHERE j.id = %s FOR NO KEY UPDATE OF j"
    )


def model_from_values(model, values):
    """A model instance from raw column values in its fields' order, converted the way the ORM
    converts a SELECT (jsonb arrives as text)."""
    fields = model._meta.concrete_fields
    converted = [
        f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v
        for f, v in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


# every column job_finish (with lifecycle._close_attempt and _settle) may change
FINISH_FIELDS = [
    "result",
    "error",
    "exit_code",
    "duration_ms",
    "lease_expires_at",
    "status",
    "finished_at",
    "next_attempt_at",
    "log_lines",
    "log_bytes",
    "dropped_log_bytes",
    "billed_ms",
    "gb_seconds",
    "egress_bytes",
    "pool",  # a job that waits again is back in its home pool (placement.back_home)
    "placed_by",
]


def close_and_finish(job: Job, attempt_number: int, attempt_fields: dict) -> None:
    """UPDATE the attempt and the job (its FINISH_FIELDS) in one statement, values adapted as the
    ORM adapts them (the queryset compilation of two ORM updates was most of a finish's CPU)."""
    names = tuple(attempt_fields)
    params = [_prep(Attempt, name, value) for name, value in attempt_fields.items()]
    params += [job.id, attempt_number]
    params += [_prep(Job, name, getattr(job, name)) for name in FINISH_FIELDS]
    params.append(job.id)
    with connection.cursor() as cursor:
        cursor.execute(_close_and_finish_sql(names), params)


@functools.cache
def _close_and_finish_sql(attempt_names: tuple[str, ...]) -> str:
    def assignments(model, names):
        return ", ".join(f"{model._meta.get_field(name).column} = %s" for name in names)

    return (
        f"WITH closed AS (UPDATE {Attempt._meta.db_table} SET {assignments(Attempt, attempt_names)}"
        " WHERE job_id = %s AND number = %s RETURNING 1)"
        f" UPDATE {Job._meta.db_table} SET {assignments(Job, FINISH_FIELDS)} WHERE id = %s"
    )


def _prep(model, name: str, value):
    return model._meta.get_field(name).get_db_prep_save(value, connection)
