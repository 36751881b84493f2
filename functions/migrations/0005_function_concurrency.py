"""Flow control (issue 25): a function's max_concurrency, reserved_concurrency, concurrency_key and
concurrency_per_key, and the partial index of the functions that have any (the fill's probe)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("functions", "0004_version_durable"),
    ]

    operations = [
        migrations.AddField(
            model_name="function",
            name="concurrency_key",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AddField(
            model_name="function",
            name="concurrency_per_key",
            field=models.PositiveIntegerField(blank=True, db_default=None, null=True),
        ),
        migrations.AddField(
            model_name="function",
            name="max_concurrency",
            field=models.PositiveIntegerField(blank=True, db_default=None, null=True),
        ),
        migrations.AddField(
            model_name="function",
            name="reserved_concurrency",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddIndex(
            model_name="function",
            index=models.Index(
                condition=models.Q(
                    ("max_concurrency__isnull", False),
                    ("reserved_concurrency__gt", 0),
                    models.Q(("concurrency_key", ""), _negated=True),
                    _connector="OR",
                ),
                fields=["tenant"],
                name="function_flow_limited",
            ),
        ),
        migrations.AddConstraint(
            model_name="function",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("max_concurrency__isnull", True),
                    models.Q(
                        ("max_concurrency__gte", 1),
                        ("max_concurrency__gte", models.F("reserved_concurrency")),
                    ),
                    _connector="OR",
                ),
                name="function_max_concurrency_covers_reserved",
            ),
        ),
        migrations.AddConstraint(
            model_name="function",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("concurrency_key", ""), ("concurrency_per_key__isnull", True)),
                    models.Q(
                        models.Q(("concurrency_key", ""), _negated=True), ("concurrency_per_key__gte", 1)
                    ),
                    _connector="OR",
                ),
                name="function_concurrency_key_has_a_limit",
            ),
        ),
    ]
