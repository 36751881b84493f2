"""Websocket routes (live job status and logs arrive with the dashboard)."""
websocket_urlpatterns: list = []
