"""Operators' admin for routes: every tenant's, read-only, deletable."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from routes.models import Route

from .support import make_function, make_route

pytestmark = pytest.mark.django_db


def test_operators_see_every_tenant_s_routes_and_delete_one(client, alice, bob):
    get_user_model().objects.create_superuser("op@example.com", "op@example.com", "pw")
    client.login(username="op@example.com", password="pw")
    make_route(make_function(alice.tenant), "/alice-hook")
    route = make_route(make_function(bob.tenant), "/bob-hook")
    listing = client.get("/admin/routes/route/").content.decode()
    assert "/alice-hook" in listing and "/bob-hook" in listing
    assert client.get(f"/admin/routes/route/{route.pk}/change/").status_code == 200
    assert client.post(f"/admin/routes/route/{route.pk}/delete/", {"post": "yes"}).status_code == 302
    assert list(Route.objects.values_list("path", flat=True)) == ["/alice-hook"]
