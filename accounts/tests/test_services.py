from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts import keys
from accounts.models import ApiKey, Quota, Tenant
from accounts.services import api_key_issue, api_key_revoke, tenant_create
from lambdasite.exceptions import Conflict

pytestmark = pytest.mark.django_db


def test_it_issues_keys_in_the_documented_format(alice):
    assert re.fullmatch(r"lsk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}", alice.key)
    assert alice.key.startswith(alice.api_key.prefix + "_")


def test_it_stores_only_an_hmac_of_the_key(alice):
    row = ApiKey.objects.get(pk=alice.api_key.pk)
    stored = " ".join(str(v) for v in row.__dict__.values())
    assert alice.key not in stored
    secret = alice.key[len(alice.api_key.prefix) + 1 :]
    assert len(secret) == 43 and secret not in stored
    assert row.key_hash == keys.hash_key(alice.key)
    assert len(row.key_hash) == 64


def test_it_never_returns_the_plaintext_again(alice):
    again = ApiKey.objects.get(pk=alice.api_key.pk)
    assert not hasattr(again, "plaintext")
    assert alice.key not in str(again) and alice.key not in repr(again)


def test_it_accepts_bearer_and_x_api_key(alice):
    assert alice.client.get("/api/v1/jobs").status_code == 200
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=alice.key)
    assert other.get("/api/v1/jobs").status_code == 200


def test_it_records_last_use(alice):
    assert ApiKey.objects.get(pk=alice.api_key.pk).last_used_at is None
    alice.client.get("/api/v1/jobs")
    assert ApiKey.objects.get(pk=alice.api_key.pk).last_used_at is not None


def test_a_revoked_key_gets_401(alice):
    api_key_revoke(api_key=alice.api_key)
    response = alice.client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_AUTHORIZATION": "Bearer lsk_aaaaaaaa_" + "x" * 43},
        {"HTTP_AUTHORIZATION": "Bearer nonsense"},
        {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
        {"HTTP_X_API_KEY": "lsk_short"},
        {},
    ],
)
def test_it_rejects_missing_or_bad_keys_with_401(db, header):
    response = APIClient().get("/api/v1/jobs", **header)
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == "unauthenticated"
    assert set(body["error"]) == {"code", "message", "details"}


def test_a_key_with_the_right_id_but_wrong_secret_is_refused(alice):
    forged = alice.api_key.prefix + "_" + "A" * 43
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert client.get("/api/v1/jobs").status_code == 401


def test_tenant_create_makes_a_quota_and_refuses_duplicates(db):
    tenant = tenant_create(slug="initech")
    assert Quota.objects.filter(tenant=tenant).exists()
    with pytest.raises(Conflict):
        tenant_create(slug="initech")


def test_commands_create_a_tenant_and_print_a_working_key_last(db, capsys):
    call_command("tenant_create", "umbrella", "--name", "Umbrella", "--owner", "owner@umbrella.test")
    call_command("apikey_create", "umbrella", "--name", "ci")
    out = capsys.readouterr().out.strip().splitlines()
    key = out[-1]
    assert keys.parse_key(key)
    tenant = Tenant.objects.get(slug="umbrella")
    assert tenant.name == "Umbrella"
    assert tenant.memberships.get().role == "owner"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/runtimes").status_code == 200


def test_read_scoped_keys_cannot_submit(alice):
    issued = api_key_issue(tenant=alice.tenant, name="ro", scope="read", operator=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert client.get("/api/v1/jobs").status_code == 200
    response = client.post("/api/v1/jobs", {"runtime": "python", "code": "def main(): pass"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "read_only_key"
