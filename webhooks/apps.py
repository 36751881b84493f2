"""The webhooks app: connects the outbox to the signals of the apps below it, whose transitions
cause events (they send, inside their transactions; the outbox writes its row there)."""

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs.signals import job_outcome
        from schedules.signals import schedule_paused

        from . import outbox

        job_outcome.connect(outbox.on_job_outcome, dispatch_uid="webhooks.outbox.job_outcome")
        schedule_paused.connect(outbox.on_schedule_paused, dispatch_uid="webhooks.outbox.schedule_paused")
