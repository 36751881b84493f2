from django.apps import AppConfig


class FunctionsConfig(AppConfig):
    name = "functions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs.services.recording import child_specs_set

        from .services.invoke import child_specs

        child_specs_set(child_specs)  # a durable run's invoke and map steps start invocations
