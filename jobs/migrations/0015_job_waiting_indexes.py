"""Flow control (issue 25): the slot filling's indexes, all partial on queued jobs (a job has entries
while it waits, none of its later transitions adds one): a tenant's waiting jobs in dispatch order (the
fast path); a function's or one key's waiting jobs in dispatch order (the general path's lanes, skipped
through function by function and key by key); its inline jobs in dispatch order."""

import django.db.models.functions.comparison
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # built without holding the jobs table's writes (a busy table: CREATE INDEX would block them)
    atomic = False

    dependencies = [
        ("jobs", "0014_job_priority_concurrency_key"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(("status", "queued")),
                fields=["tenant", "-priority", "next_attempt_at", "created_at"],
                name="job_waiting_order",
            ),
        ),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                models.F("tenant"),
                models.F("function"),
                django.db.models.functions.comparison.Coalesce("concurrency_key", models.Value("")),
                models.OrderBy(models.F("priority"), descending=True),
                models.F("next_attempt_at"),
                models.F("created_at"),
                condition=models.Q(("function__isnull", False), ("status", "queued")),
                name="job_waiting_lane",
            ),
        ),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(("function__isnull", True), ("status", "queued")),
                fields=["tenant", "-priority", "next_attempt_at", "created_at"],
                name="job_waiting_inline",
            ),
        ),
    ]
