"""A new tenant's concurrency cap: 4 -> 100 (a worker runs many jobs at once now, bounded by memory).

Existing quotas keep their value: an operator's choice is not second-guessed."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_quota_durable_runs"),
    ]

    operations = [
        migrations.AlterField(
            model_name="quota",
            name="max_concurrency",
            field=models.PositiveIntegerField(default=100),
        ),
    ]
