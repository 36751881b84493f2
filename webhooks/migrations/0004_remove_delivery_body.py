"""Deliveries keep no body of their own: they refer to their Event's."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0003_deliveries_share_event_bodies")]

    operations = [
        # a default first, so that running this backwards can add the column to existing rows
        # (0003 backwards then writes each delivery's copy into it)
        migrations.AlterField(model_name="delivery", name="body", field=models.TextField(default="")),
        migrations.RemoveField(model_name="delivery", name="body"),
        migrations.AlterField(
            model_name="delivery",
            name="event",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="deliveries", to="webhooks.event"
            ),
        ),
    ]
