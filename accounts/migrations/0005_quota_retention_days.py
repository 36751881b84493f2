from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_schedule_and_webhook_quotas")]

    operations = [
        migrations.AddField(
            model_name="quota",
            name="retention_days",
            field=models.PositiveIntegerField(
                default=30,
                help_text="finished jobs, their attempts, log lines and webhook deliveries are deleted after "
                "this many days (0 keeps them forever)",
            ),
        ),
    ]
