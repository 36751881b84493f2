"""Schema-driven fuzzing: every operation in the app's own OpenAPI schema, with generated
valid and invalid inputs, never answers with a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

# system tier: one to two minutes (the generated ?wait values of POST /jobs hold their requests)
pytestmark = pytest.mark.system

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """As Django's test client does: a request must not close the test's database connection."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    """Generated URLs (webhook endpoints) must not make the suite query a name server: names do not
    resolve here, and no test sends traffic beyond loopback."""
    import socket

    def refuse(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "no DNS in the fuzz test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_yields_a_server_error(case, alice):
    response = case.call(headers={"Authorization": f"Bearer {alice.key}"})
    assert response.status_code < 500, (case.method, case.path, case.body, response.text[:500])
