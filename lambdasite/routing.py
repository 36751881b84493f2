"""Websocket routes: live job status and logs for the dashboard (see dashboard/consumers.py)."""

from django.urls import re_path

from dashboard import consumers

websocket_urlpatterns = [
    re_path(r"^ws/tenants/(?P<ident>[-a-zA-Z0-9_]+)/$", consumers.TenantConsumer.as_asgi()),
    re_path(r"^ws/jobs/(?P<ident>[-a-fA-F0-9]+)/$", consumers.JobConsumer.as_asgi()),
    re_path(r"^ws/builds/(?P<ident>[0-9]+)/$", consumers.BuildConsumer.as_asgi()),
]
