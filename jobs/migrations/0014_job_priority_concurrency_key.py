"""Flow control (issue 25): a job's priority (0-9, default 5) and the concurrency key its args gave;
the fill's indexes, both partial on queued jobs (an entry per waiting job, none per transition)."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_quota_durable_runs"),
        ("functions", "0005_function_concurrency"),
        ("jobs", "0013_durable_runs_steps_events"),
        ("routes", "0001_initial"),
        ("schedules", "0002_schedule_run_job_set_null_in_the_database"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="concurrency_key",
            field=models.CharField(blank=True, max_length=200, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="priority",
            field=models.PositiveSmallIntegerField(db_default=5, default=5),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("status", "queued")),
                fields=["tenant", "-priority", "next_attempt_at", "created_at"],
                name="job_waiting_order",
            ),
        ),
        migrations.AddIndex(
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
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(("priority__gte", 0), ("priority__lte", 9)), name="job_priority_range"
            ),
        ),
    ]
