"""Durable runs (issue 27): a job's durable flag, parent, step and place in its parent's map; the
status waiting (jobs) and suspended (attempts) and the trigger parent; the Step and Event tables.

A purged run (jobs.services.retention deletes in SQL, not through the ORM) leaves its children with
no parent: the database sets the reference to NULL itself, as the model's SET_NULL says."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

PARENT_SET_NULL = """
DO $$
DECLARE name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
    WHERE conrelid = 'jobs_job'::regclass AND confrelid = 'jobs_job'::regclass AND contype = 'f';
    IF name IS NOT NULL THEN
        EXECUTE format('ALTER TABLE jobs_job DROP CONSTRAINT %I', name);
    END IF;
    ALTER TABLE jobs_job ADD CONSTRAINT jobs_job_parent_id_set_null
        FOREIGN KEY (parent_id) REFERENCES jobs_job (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;
END $$;
"""
PARENT_AS_DJANGO_MADE_IT = """
ALTER TABLE jobs_job DROP CONSTRAINT jobs_job_parent_id_set_null;
ALTER TABLE jobs_job ADD CONSTRAINT jobs_job_parent_id_fk_jobs_job_id
    FOREIGN KEY (parent_id) REFERENCES jobs_job (id) DEFERRABLE INITIALLY DEFERRED;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_quota_durable_runs"),
        ("functions", "0004_version_durable"),
        ("jobs", "0012_job_tenant_egress"),
        ("routes", "0001_initial"),
        ("schedules", "0002_schedule_run_job_set_null_in_the_database"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Event",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                ("key", models.CharField(blank=True, max_length=255)),
                ("data", models.JSONField(blank=True, null=True)),
                ("received_at", models.DateTimeField(db_index=True)),
            ],
            options={
                "ordering": ["received_at"],
            },
        ),
        migrations.CreateModel(
            name="Step",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.PositiveIntegerField()),
                ("name", models.CharField(max_length=200)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("step", "Step"),
                            ("sleep", "Sleep"),
                            ("invoke", "Invoke"),
                            ("map", "Map"),
                            ("event", "Event"),
                        ],
                        max_length=8,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("retrying", "Retrying"),
                            ("waiting", "Waiting"),
                            ("cancelled", "Cancelled"),
                        ],
                        max_length=10,
                    ),
                ),
                ("input", models.JSONField(blank=True, null=True)),
                ("result", models.JSONField(blank=True, null=True)),
                ("error", models.JSONField(blank=True, null=True)),
                ("attempts", models.PositiveIntegerField(default=1)),
                ("size", models.PositiveIntegerField(default=0)),
                ("wake_at", models.DateTimeField(blank=True, null=True)),
                ("event", models.CharField(blank=True, max_length=200)),
                ("key", models.CharField(blank=True, max_length=255)),
                ("event_id", models.BigIntegerField(blank=True, null=True)),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "ordering": ["job", "seq"],
            },
        ),
        migrations.RemoveConstraint(
            model_name="attempt",
            name="attempt_status_is_an_attempt_status",
        ),
        migrations.RemoveConstraint(
            model_name="job",
            name="job_status_is_a_job_status",
        ),
        migrations.RemoveConstraint(
            model_name="job",
            name="job_trigger_is_a_trigger",
        ),
        migrations.AddField(
            model_name="job",
            name="child_index",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="durable",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="job",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="children",
                to="jobs.job",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="parent_step",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="attempt",
            name="status",
            field=models.CharField(
                choices=[
                    ("scheduled", "Scheduled"),
                    ("queued", "Queued"),
                    ("dispatched", "Dispatched"),
                    ("running", "Running"),
                    ("retrying", "Retrying"),
                    ("waiting", "Waiting"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("timed_out", "Timed Out"),
                    ("killed", "Killed"),
                    ("cancelled", "Cancelled"),
                    ("dead", "Dead"),
                    ("lost", "Lost"),
                    ("suspended", "Suspended"),
                ],
                default="running",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="status",
            field=models.CharField(
                choices=[
                    ("scheduled", "Scheduled"),
                    ("queued", "Queued"),
                    ("dispatched", "Dispatched"),
                    ("running", "Running"),
                    ("retrying", "Retrying"),
                    ("waiting", "Waiting"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("timed_out", "Timed Out"),
                    ("killed", "Killed"),
                    ("cancelled", "Cancelled"),
                    ("dead", "Dead"),
                    ("lost", "Lost"),
                    ("suspended", "Suspended"),
                ],
                default="queued",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="trigger",
            field=models.CharField(
                blank=True,
                choices=[
                    ("api_key", "API key"),
                    ("dashboard", "dashboard"),
                    ("schedule", "schedule"),
                    ("route", "route"),
                    ("parent", "parent run"),
                ],
                default="",
                max_length=12,
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("parent__isnull", False)),
                fields=["parent", "parent_step", "child_index"],
                name="job_parent_step",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("parent__isnull", False)), fields=["status"], name="job_child_status"
            ),
        ),
        migrations.AddConstraint(
            model_name="attempt",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "status__in",
                        (
                            "running",
                            "succeeded",
                            "failed",
                            "timed_out",
                            "killed",
                            "cancelled",
                            "lost",
                            "suspended",
                        ),
                    )
                ),
                name="attempt_status_is_an_attempt_status",
            ),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "status__in",
                        (
                            "scheduled",
                            "queued",
                            "dispatched",
                            "running",
                            "retrying",
                            "waiting",
                            "succeeded",
                            "failed",
                            "timed_out",
                            "killed",
                            "cancelled",
                            "dead",
                        ),
                    )
                ),
                name="job_status_is_a_job_status",
            ),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("trigger__in", ["", "api_key", "dashboard", "schedule", "route", "parent"])
                ),
                name="job_trigger_is_a_trigger",
            ),
        ),
        migrations.AddField(
            model_name="event",
            name="tenant",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="accounts.tenant",
            ),
        ),
        migrations.AddField(
            model_name="step",
            name="job",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="step_set",
                to="jobs.job",
            ),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["tenant", "name", "key", "received_at"], name="event_lookup"),
        ),
        migrations.AddIndex(
            model_name="step",
            index=models.Index(
                condition=models.Q(("status__in", ["waiting", "retrying"]), ("wake_at__isnull", False)),
                fields=["wake_at"],
                name="step_wake_due",
            ),
        ),
        migrations.AddIndex(
            model_name="step",
            index=models.Index(
                condition=models.Q(("kind", "event"), ("status", "waiting")),
                fields=["event", "key"],
                name="step_event_waiting",
            ),
        ),
        migrations.AddConstraint(
            model_name="step",
            constraint=models.UniqueConstraint(fields=("job", "seq"), name="one_step_seq_per_job"),
        ),
        migrations.AddConstraint(
            model_name="step",
            constraint=models.UniqueConstraint(fields=("job", "name"), name="one_step_name_per_job"),
        ),
        migrations.AddConstraint(
            model_name="step",
            constraint=models.CheckConstraint(
                condition=models.Q(("seq__gte", 1)), name="step_numbered_from_one"
            ),
        ),
        migrations.RunSQL(PARENT_SET_NULL, PARENT_AS_DJANGO_MADE_IT),
    ]
