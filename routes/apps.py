"""The routes app: public HTTP endpoints bound to functions. Its signals drop every web process's
route tables when a route changes, however it changed (API, dashboard, admin, a function's deletion)."""

from django.apps import AppConfig


class RoutesConfig(AppConfig):
    name = "routes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .models import Route
        from .services import table

        post_save.connect(table.routes_changed_signal, sender=Route, dispatch_uid="routes.changed.save")
        post_delete.connect(table.routes_changed_signal, sender=Route, dispatch_uid="routes.changed.delete")
