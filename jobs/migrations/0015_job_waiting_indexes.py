"""Flow control (issue 25): the slot filling's indexes, both partial on queued jobs (a job has an entry
while it waits, none of its later transitions adds one): a tenant's waiting jobs in dispatch order, and
a function's (a key's) waiting jobs in dispatch order, skipped through key by key."""

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
                condition=models.Q(("function__isnull", False), ("status", "queued")),
                fields=[
                    "tenant",
                    "function",
                    "concurrency_key",
                    "-priority",
                    "next_attempt_at",
                    "created_at",
                ],
                name="job_waiting_lane",
            ),
        ),
    ]
