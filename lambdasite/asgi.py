"""ASGI entry point: HTTP through Django (the hot endpoints through lambdasite.fasthttp first, a
route's public requests, /fn/…, through routes.api.public), websockets through Channels."""

import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdasite.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.authentication import admitted  # noqa: E402
from functions.api import handlers as functions_handlers  # noqa: E402
from functions.api import views as functions_views  # noqa: E402
from jobs.api import handlers as jobs_handlers  # noqa: E402
from jobs.api import jobs as jobs_views  # noqa: E402
from routes.api.public import RouteServer  # noqa: E402

from .fasthttp import FastPath, Route, allowed  # noqa: E402
from .routing import websocket_urlpatterns  # noqa: E402

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# each with the URL name, the handler and the Allow header of the Django view it stands in front of
FAST_ROUTES = [
    Route(
        "POST",
        re.compile(r"^/api/v1/jobs$"),
        "api-jobs",
        jobs_handlers.submit,
        allowed(jobs_views.jobs),
    ),
    Route(
        "GET",
        re.compile(rf"^/api/v1/jobs/({_UUID})$"),
        "api-job-detail",
        jobs_handlers.detail,
        allowed(jobs_views.job_detail),
    ),
    Route(
        "POST",
        re.compile(r"^/api/v1/functions/([^/]+)/invoke$"),
        "api-function-invoke",
        functions_handlers.invoke,
        allowed(functions_views.invoke_view),
    ),
]

http_application = RouteServer(FastPath(django_asgi_app, FAST_ROUTES, admitted))

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
