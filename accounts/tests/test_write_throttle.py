"""Every API write but the admitted ones (submit, batch, invoke, warm: the submission rate meters
them) spends the tenant's writes_per_minute: a flood of key, alias or schedule writes is a 429
with Retry-After in the envelope, and one tenant's flood leaves another's bucket alone."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db


def _post(persona, path, body):
    return persona.client.post(path, data=json.dumps(body), content_type="application/json")


def _patch(persona, path, body):
    return persona.client.patch(path, data=json.dumps(body), content_type="application/json")


def test_api_writes_are_throttled_per_tenant(alice, bob):
    quota = alice.tenant.quota
    quota.writes_per_minute = 3
    quota.save()
    code = "def main():\n    return 1\n"
    assert (
        _post(alice, "/api/v1/functions", {"name": "f", "runtime": "python", "code": code}).status_code == 201
    )
    for text in ("one", "two"):
        assert _patch(alice, "/api/v1/functions/f", {"description": text}).status_code == 200
    refused = _patch(alice, "/api/v1/functions/f", {"description": "three"})
    assert refused.status_code == 429, refused.json()
    assert int(refused["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    assert alice.client.get("/api/v1/functions/f").json()["description"] == "two"
    assert (
        _post(bob, "/api/v1/functions", {"name": "f", "runtime": "python", "code": code}).status_code == 201
    )


def test_submissions_are_metered_by_admission_not_the_write_bucket(alice):
    quota = alice.tenant.quota
    quota.writes_per_minute = 1
    quota.save()
    for _ in range(3):
        response = _post(alice, "/api/v1/jobs", {"runtime": "python", "code": "def main():\n    return 1\n"})
        assert response.status_code == 202, response.json()
