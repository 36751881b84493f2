"""The secrets API: set, rotate, list, read metadata, delete; roles; another tenant's secret; no value
in any answer."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.services import api_key_issue, membership_set, user_get_or_create
from vault.services import secret_values

pytestmark = pytest.mark.django_db

VALUE = "sk_live_do-not-leak-0123456789"


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def put(client, name, body):
    return client.put(f"/api/v1/secrets/{name}", data=json.dumps(body), content_type="application/json")


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return body["error"]


def key_of(persona, role: str, scope: str = "write") -> APIClient:
    user = user_get_or_create(email=f"{role}-{scope}@acme.test", password="pw")
    membership_set(tenant=persona.tenant, user=user, role=role)
    return client_for(
        api_key_issue(tenant=persona.tenant, name=f"{role} key", scope=scope, created_by=user).plaintext
    )


def test_it_creates_with_201_rotates_with_200_and_never_returns_the_value(alice):
    created = put(alice.client, "stripe", {"value": VALUE})
    assert created.status_code == 201, created.content
    body = created.json()
    assert created["Location"] == "/api/v1/secrets/stripe"
    assert set(body) == {"name", "revision", "fingerprint", "created_at", "updated_at", "updated_by", "links"}
    assert (body["name"], body["revision"], len(body["fingerprint"])) == ("stripe", 1, 12)
    assert body["updated_by"] == f"API key acme key ({alice.api_key.prefix})"
    rotated = put(alice.client, "stripe", {"value": VALUE + "-2"})
    assert rotated.status_code == 200 and rotated.json()["revision"] == 2
    assert rotated.json()["fingerprint"] != body["fingerprint"]
    assert rotated.json()["created_at"] == body["created_at"]
    got = alice.client.get("/api/v1/secrets/stripe")
    assert got.status_code == 200 and got.json() == rotated.json()
    for response in (created, rotated, got, alice.client.get("/api/v1/secrets")):
        assert VALUE not in response.content.decode()
    assert secret_values(tenant=alice.tenant, bindings={"K": "stripe"})[0].value == VALUE + "-2"


def test_the_list_is_paged_by_name(alice):
    for name in ["b", "a", "C", "d"]:
        put(alice.client, name, {"value": "v"})
    first = alice.client.get("/api/v1/secrets?limit=2").json()
    assert [s["name"] for s in first["results"]] == ["C", "a"] and first["previous"] is None
    second = alice.client.get(first["next"]).json()
    assert [s["name"] for s in second["results"]] == ["b", "d"] and second["next"] is None
    assert_error(alice.client.get("/api/v1/secrets?cursor=bogus"), 400, "validation_error")


def test_delete_erases_it_and_a_second_delete_is_404(alice):
    put(alice.client, "s", {"value": VALUE})
    assert alice.client.delete("/api/v1/secrets/s").status_code == 204
    assert_error(alice.client.get("/api/v1/secrets/s"), 404, "secret_not_found")
    assert_error(alice.client.delete("/api/v1/secrets/s"), 404, "secret_not_found")
    assert alice.client.get("/api/v1/secrets").json()["results"] == []
    again = put(alice.client, "s", {"value": "new"})
    assert again.status_code == 201 and again.json()["revision"] == 2


def test_another_tenants_secret_is_404_everywhere(alice, bob):
    put(bob.client, "theirs", {"value": VALUE})
    assert_error(alice.client.get("/api/v1/secrets/theirs"), 404, "secret_not_found")
    assert_error(alice.client.delete("/api/v1/secrets/theirs"), 404, "secret_not_found")
    assert alice.client.get("/api/v1/secrets").json()["results"] == []
    # setting the same name makes alice's own secret; bob's is untouched
    assert put(alice.client, "theirs", {"value": "mine"}).status_code == 201
    assert secret_values(tenant=bob.tenant, bindings={"X": "theirs"})[0].value == VALUE


def test_members_and_viewers_read_metadata_and_only_owners_write(alice):
    put(alice.client, "s", {"value": VALUE})
    member, viewer = key_of(alice, Membership.Role.MEMBER), key_of(alice, Membership.Role.VIEWER)
    owner_read = key_of(alice, Membership.Role.OWNER, scope="read")
    for reader in (member, viewer, owner_read):
        assert reader.get("/api/v1/secrets/s").status_code == 200
        assert reader.get("/api/v1/secrets").status_code == 200
    error = assert_error(put(member, "s", {"value": "x"}), 403, "owner_required")
    assert "owner" in error["message"]
    assert_error(member.delete("/api/v1/secrets/s"), 403, "owner_required")
    assert_error(put(viewer, "s", {"value": "x"}), 403, "read_only_key")
    assert_error(put(owner_read, "s", {"value": "x"}), 403, "read_only_key")
    assert alice.client.get("/api/v1/secrets/s").json()["revision"] == 1


def test_an_operator_key_acts_as_an_owner(alice):
    operator = client_for(api_key_issue(tenant=alice.tenant, name="ops", operator=True).plaintext)
    response = put(operator, "s", {"value": "v"})
    assert response.status_code == 201 and response.json()["updated_by"].startswith("API key ops (lsk_")


def test_a_key_whose_owner_became_a_member_no_longer_writes(alice):
    other = user_get_or_create(email="carol@acme.test", password="pw")
    membership_set(tenant=alice.tenant, user=other, role=Membership.Role.OWNER)
    key = client_for(api_key_issue(tenant=alice.tenant, name="carol", created_by=other).plaintext)
    assert put(key, "s", {"value": "v"}).status_code == 201
    membership_set(tenant=alice.tenant, user=other, role=Membership.Role.MEMBER)
    assert_error(put(key, "s", {"value": "w"}), 403, "owner_required")


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({}, 400, "validation_error"),
        ({"value": ""}, 400, "validation_error"),
        ({"value": 42}, 400, "validation_error"),
        ({"value": None}, 400, "validation_error"),
        ({"value": "a\u0000b"}, 400, "validation_error"),
        ({"value": "v", "extra": 1}, 400, "validation_error"),
        ({"value": "x" * (64 * 1024 + 1)}, 413, "payload_too_large"),
        (["v"], 400, "validation_error"),
    ],
)
def test_bad_values_are_4xx_in_the_envelope(alice, body, status, code):
    assert_error(put(alice.client, "s", body), status, code)
    assert alice.client.get("/api/v1/secrets").json()["results"] == []


@pytest.mark.parametrize("name", ["1abc", "a.b", "x" * 65, "-x", "a%20b", "%C3%A9"])
def test_bad_names_are_400_on_put_and_404_on_get(alice, name):
    error = assert_error(put(alice.client, name, {"value": "v"}), 400, "validation_error")
    assert "name" in error["message"]
    assert_error(alice.client.get(f"/api/v1/secrets/{name}"), 404, "secret_not_found")


def test_a_refusal_never_repeats_the_value(alice):
    for body in ({"value": VALUE + "\u0000"}, {"value": VALUE * 3000}, {"value": VALUE, "oops": VALUE}):
        response = put(alice.client, "s", body)
        assert response.status_code in (400, 413) and VALUE not in response.content.decode()


def test_no_key_is_401(db):
    assert APIClient().get("/api/v1/secrets").status_code == 401
    assert APIClient().put("/api/v1/secrets/s", {"value": "v"}, format="json").status_code == 401


def test_the_value_is_never_logged(alice, caplog):
    caplog.set_level("DEBUG")
    put(alice.client, "s", {"value": VALUE})
    put(alice.client, "s", {"value": VALUE + "\u0000"})  # a refusal
    alice.client.get("/api/v1/secrets/s")
    text = "\n".join(repr(record.__dict__) for record in caplog.records)
    assert VALUE not in text


def test_the_schema_documents_the_secrets_endpoints(client):
    schema = json.loads(client.get("/api/schema/?format=json").content)
    paths = schema["paths"]
    assert {"get"} <= set(paths["/api/v1/secrets"]) and {"get", "put", "delete"} <= set(
        paths["/api/v1/secrets/{secret_name}"]
    )
    assert paths["/api/v1/secrets/{secret_name}"]["put"]["parameters"][0]["schema"]["pattern"].startswith(
        "^[A-Za-z_]"
    )
    item = schema["components"]["schemas"]["SecretSchema"]["properties"]
    assert "value" not in item and "fingerprint" in item
    page = paths["/api/v1/secrets"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "results" in schema["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]["properties"]
