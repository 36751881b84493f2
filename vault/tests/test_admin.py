"""Operators' admin: secrets' names, revisions and authors but never a value; data keys' master key
ids; a tenant's max_egress, max_secrets and monthly egress budget on its quota."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Quota
from vault.models import Secret, TenantKey
from vault.services import secret_put

from .support import OWNER

pytestmark = pytest.mark.django_db

VALUE = "sk_live_admin-never-sees-this"


@pytest.fixture
def operator(client):
    get_user_model().objects.create_superuser("op@example.com", "op@example.com", "pw")
    client.login(username="op@example.com", password="pw")
    return client


def test_operators_see_secrets_metadata_and_never_a_value(operator, alice):
    secret_put(tenant=alice.tenant, name="stripe", value=VALUE, actor=OWNER)
    secret_put(tenant=alice.tenant, name="stripe", value=VALUE + "2", actor=OWNER)
    secret = Secret.objects.get()
    listing = operator.get("/admin/vault/secret/").content.decode()
    page = operator.get(f"/admin/vault/secret/{secret.pk}/change/").content.decode()
    keys = operator.get("/admin/vault/tenantkey/").content.decode()
    assert "stripe" in listing and "owner" in page and TenantKey.objects.get().master_key_id in keys
    for text in (listing, page, keys):
        assert VALUE not in text and "ciphertext" not in text.lower() and "field-wrapped" not in text
    assert operator.post(f"/admin/vault/secret/{secret.pk}/delete/").status_code == 403


def test_operators_set_max_egress_and_max_secrets_on_the_tenants_quota(operator, alice):
    page = operator.get(f"/admin/accounts/tenant/{alice.tenant.pk}/change/").content.decode()
    assert 'name="quota-0-max_egress"' in page and "public (any public address)" in page
    assert 'name="quota-0-max_secrets"' in page and 'name="quota-0-max_egress_bytes_month"' in page
    page = operator.get(f"/admin/accounts/quota/{alice.tenant.quota.pk}/change/")
    form = {
        f.name: getattr(alice.tenant.quota, f.name) for f in Quota._meta.concrete_fields if f.name != "id"
    }
    form.update(tenant=alice.tenant.pk, max_egress="public", max_secrets=5, max_egress_bytes_month=2 << 30)
    form.update(allowed_pools="")  # (a list field: empty is every pool)
    response = operator.post(f"/admin/accounts/quota/{alice.tenant.quota.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    quota = Quota.objects.get(tenant=alice.tenant)
    assert (quota.max_egress, quota.max_secrets, quota.max_egress_bytes_month) == ("public", 5, 2 << 30)
    form.update(max_egress_bytes_month="")  # empty: no monthly egress budget
    operator.post(f"/admin/accounts/quota/{alice.tenant.quota.pk}/change/", form)
    assert Quota.objects.get(tenant=alice.tenant).max_egress_bytes_month is None


def test_operators_set_allowed_pools_on_the_quota(operator, alice):
    """The worker pools a tenant may use (jobs.placement): comma-separated names, checked; empty: all."""
    page = operator.get(f"/admin/accounts/tenant/{alice.tenant.pk}/change/").content.decode()
    assert 'name="quota-0-allowed_pools"' in page
    url = f"/admin/accounts/quota/{alice.tenant.quota.pk}/change/"
    form = {
        f.name: getattr(alice.tenant.quota, f.name) for f in Quota._meta.concrete_fields if f.name != "id"
    }
    form.update(tenant=alice.tenant.pk, allowed_pools="default,eu,eu")
    assert operator.post(url, form).status_code == 302
    assert Quota.objects.get(tenant=alice.tenant).allowed_pools == ["default", "eu"]
    refused = operator.post(url, {**form, "allowed_pools": "default,Bad Pool"})
    assert refused.status_code == 200 and "a pool name is 1-32 characters" in refused.content.decode()
    assert Quota.objects.get(tenant=alice.tenant).allowed_pools == ["default", "eu"]
    operator.post(url, {**form, "allowed_pools": ""})
    assert Quota.objects.get(tenant=alice.tenant).allowed_pools is None
