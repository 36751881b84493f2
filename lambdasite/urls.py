"""Top-level routes: API, schema and docs, admin, health, and /favicon.ico."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.throttle import login_throttled
from dashboard.views.redirects import LoginView
from functions.api.batch import jobs_batch
from routes.api.views import job_replay

from . import views
from .errors import json_error

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        login_throttled(LoginView.as_view(redirect_authenticated_user=True)),  # next: dashboard pages only
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(success_url="/password/done/"),
        name="password_change",
    ),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("app/", include("dashboard.urls")),
    # browsers ask for it on their own; every page links the SVG
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("healthz/fleet", views.fleet, name="fleet"),  # the fleet's health: for people and alerts, not probes
    path("metrics", views.metrics, name="metrics"),
    # a batch may invoke deployed functions: the functions API's, ahead of jobs/<id>
    path("api/v1/jobs/batch", jobs_batch, name="api-jobs-batch"),
    path("api/v1/jobs/<str:job_id>/replay", job_replay, name="api-job-replay"),  # a route's request again
    path("api/v1/", include("jobs.api.urls")),
    path("api/v1/", include("functions.api.urls")),
    path("api/v1/", include("schedules.api.urls")),
    path("api/v1/", include("webhooks.api.urls")),
    path("api/v1/", include("vault.api.urls")),
    path("api/v1/", include("routes.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/rq/", include("django_rq.urls")),  # queue depth, workers, registries (staff only)
    path(
        "admin/login/", login_throttled(admin.site.login)
    ),  # ahead of admin.site.urls: the same view, throttled
    path("admin/", admin.site.urls),
]


def handler404(request, exception=None):
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return json_error(404, "not_found", "no such endpoint")
    return page_not_found(request, exception)


def handler500(request):
    import sys

    from django.http import HttpResponse
    from django.views.defaults import server_error
    from psycopg_pool import PoolTimeout

    if isinstance(sys.exc_info()[1], PoolTimeout):
        # every pooled database connection stayed busy for DB_POOL_TIMEOUT_S: overload, not a bug
        if request.path.startswith("/api/"):
            response = json_error(503, "overloaded", "the service is busy; retry shortly")
        else:
            response = HttpResponse(
                "The service is busy; retry in a moment.", status=503, content_type="text/plain"
            )
        response["Retry-After"] = "1"
        return response
    if request.path.startswith("/api/"):
        return json_error(500, "internal_error", "internal server error")
    return server_error(request)


def handler400(request, exception=None):
    from django.views.defaults import bad_request

    if request.path.startswith("/api/"):
        return json_error(400, "bad_request", "bad request")
    return bad_request(request, exception)
