"""ASGI entry point: HTTP through Django (the hot endpoints through lambdasite.fasthttp first),
websockets through Channels."""

import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdasite.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from functions.api import fast as functions_fast  # noqa: E402
from functions.api import views as functions_views  # noqa: E402
from jobs.api import fast as jobs_fast  # noqa: E402
from jobs.api import jobs as jobs_views  # noqa: E402

from .fasthttp import FastPath, Route, allowed  # noqa: E402
from .routing import websocket_urlpatterns  # noqa: E402

# each with the URL name and the Allow header of the Django view it stands in front of
FAST_ROUTES = [
    Route("POST", re.compile(r"^/api/v1/jobs$"), "api-jobs", jobs_fast.submit_job, allowed(jobs_views.jobs)),
    Route(
        "GET",
        re.compile(rf"^/api/v1/jobs/({jobs_fast.JOB_ID})$"),
        "api-job-detail",
        jobs_fast.job_detail,
        allowed(jobs_views.job_detail),
    ),
    Route(
        "POST",
        re.compile(r"^/api/v1/functions/([^/]+)/invoke$"),
        "api-function-invoke",
        functions_fast.invoke,
        allowed(functions_views.invoke_view),
    ),
]

http_application = FastPath(django_asgi_app, FAST_ROUTES)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
