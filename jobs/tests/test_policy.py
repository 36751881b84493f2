"""An inline job's egress, env and secret bindings (jobs.policy, the rule a function version follows
at deploy): every bad shape is a 400 naming its field, egress beyond max_egress a 403, an unknown
secret a 400; the job's answer shows them (secret names, never values); a batch checks each item;
an invocation records its version's. PostgreSQL and Redis, no Docker."""

from __future__ import annotations

import pytest

from functions.services.deploy import VersionSpec, function_create
from jobs.models import Job
from vault.services import Actor, secret_put

pytestmark = pytest.mark.django_db
OWNER = Actor(label="owner", is_owner=True)
CODE = "def main():\n    return 1\n"


def submit(persona, idempotency_key=None, **fields):
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    return persona.post_job({"runtime": "python", "code": CODE, **fields}, **headers)


def assert_error(response, status: int, code: str, field: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"].startswith((f"{field}:", f"{field}.")), error["message"]
    return error


def test_a_job_declares_egress_env_and_secrets_and_its_answer_shows_them(alice):
    secret_put(tenant=alice.tenant, name="stripe", value="sk_live_x", actor=OWNER)
    response = submit(
        alice,
        egress=["API.Stripe.com.:443", "*.example.com:443", "api.stripe.com:443"],
        env={"LOG_LEVEL": "debug", "ZED": "", "A": "1"},
        secrets={"STRIPE_KEY": "stripe"},
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["egress"] == ["*.example.com:443", "api.stripe.com:443"]  # normalised, each once, sorted
    assert list(body["env"]) == ["A", "LOG_LEVEL", "ZED"] and body["env"]["LOG_LEVEL"] == "debug"
    assert body["secrets"] == {"STRIPE_KEY": "stripe"}
    assert body["egress_bytes"] == 0
    assert body["links"]["connections"] == f"/api/v1/jobs/{body['id']}/connections"
    detail = alice.client.get(f"/api/v1/jobs/{body['id']}").json()
    assert (detail["egress"], detail["env"], detail["secrets"]) == (
        body["egress"],
        body["env"],
        body["secrets"],
    )
    assert "sk_live_x" not in str(detail)
    job = Job.objects.get(pk=body["id"])
    assert (job.egress_mode, job.egress_allow) == ("allowlist", ["*.example.com:443", "api.stripe.com:443"])


def test_a_job_without_them_reaches_nothing(alice):
    body = submit(alice).json()
    assert (body["egress"], body["env"], body["secrets"], body["egress_bytes"]) == ("none", {}, {}, 0)
    assert submit(alice, egress=[]).json()["egress"] == "none"  # an empty list is none


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("egress", "everything", 'must be "none", "public"'),
        ("egress", 443, 'must be "none", "public"'),
        ("egress", [1], 'must be "none", "public"'),
        ("egress", ["api.example.com"], "is not host:port"),
        ("egress", ["mail.example.com:25"], "port 25 is never reachable"),
        ("egress", ["a.*.example.com:443"], "wildcard may only be the first label"),
        ("egress", ["0x7f.1:443"], "write the address as"),
        ("egress", ["a.example.com:443"] * 101, "at most 100"),
        ("env", ["A=1"], "Expected a dictionary"),
        ("env", {"A": 1}, "valid string"),
        ("env", {"1A": "x"}, "is not an environment variable name"),
        ("env", {"HTTPS_PROXY": "http://evil:3128"}, "reserved"),
        ("env", {"LD_PRELOAD": "/tmp/x.so"}, "reserved"),
        ("env", {"BIG": "x" * 4096}, "over the 4096-byte limit"),
        ("secrets", ["stripe"], "Expected a dictionary"),
        ("secrets", {"KEY": 5}, "valid string"),
        ("secrets", {"PATH": "stripe"}, "reserved"),
        ("secrets", {"KEY": "Not A Name"}, "is not a secret name"),
    ],
)
def test_every_bad_shape_is_a_400_naming_its_field(alice, field, value, says):
    error = assert_error(submit(alice, **{field: value}), 400, "validation_error", field)
    assert says in error["message"], error["message"]
    assert not Job.objects.exists()


def test_a_name_is_either_configuration_or_a_secret(alice):
    secret_put(tenant=alice.tenant, name="stripe", value="v", actor=OWNER)
    response = submit(alice, env={"KEY": "x"}, secrets={"KEY": "stripe"})
    assert "set by env too" in assert_error(response, 400, "validation_error", "secrets")["message"]


def test_egress_beyond_the_tenants_max_egress_is_a_403(alice):
    error = assert_error(submit(alice, egress="public"), 403, "egress_not_allowed", "egress")
    assert error["details"] == {
        "field": "egress",
        "quota": "max_egress",
        "limit": "allowlist",
        "requested": "public",
    }
    alice.tenant.quota.max_egress = "none"
    alice.tenant.quota.save()
    assert_error(submit(alice, egress=["api.example.com:443"]), 403, "egress_not_allowed", "egress")
    assert submit(alice, env={"A": "1"}).status_code == 202  # configuration is not egress
    assert Job.objects.count() == 1


def test_a_secret_the_tenant_does_not_have_is_a_400(alice, bob):
    secret_put(tenant=bob.tenant, name="stripe", value="bobs", actor=OWNER)  # another tenant's: not alice's
    error = assert_error(submit(alice, secrets={"KEY": "stripe"}), 400, "unknown_secret", "secrets")
    assert error["details"]["missing"] == ["stripe"]
    assert not Job.objects.filter(tenant=alice.tenant).exists()


def test_a_batch_checks_every_items_reach(alice):
    secret_put(tenant=alice.tenant, name="stripe", value="v", actor=OWNER)
    items = [
        {"runtime": "python", "code": CODE, "secrets": {"KEY": "stripe"}},
        {"runtime": "python", "code": CODE},
    ]
    bad = alice.client.post(
        "/api/v1/jobs/batch",
        {"jobs": [*items, {"runtime": "python", "code": CODE, "egress": "public"}]},
        format="json",
    )
    assert bad.status_code == 403 and bad.json()["error"]["details"]["index"] == 2
    assert not Job.objects.exists()
    good = alice.client.post("/api/v1/jobs/batch", {"jobs": items}, format="json")
    assert good.status_code == 202, good.content
    assert [j["secrets"] for j in good.json()["jobs"]] == [{"KEY": "stripe"}, {}]


def test_idempotency_compares_the_reach_and_ignores_its_absence(alice):
    first = submit(alice, idempotency_key="k1")
    again = submit(alice, egress="none", env={}, idempotency_key="k1")
    assert again.status_code == 200, again.content  # the same request
    other = submit(alice, env={"A": "1"}, idempotency_key="k1")
    assert other.status_code == 422, other.content
    assert Job.objects.get().id == Job.objects.get(pk=first.json()["id"]).id


def test_an_invocation_records_its_versions_reach(alice):
    secret_put(tenant=alice.tenant, name="stripe", value="v", actor=OWNER)
    function_create(
        tenant=alice.tenant, user=None, name="charge", runtime="python",
        spec=VersionSpec(
            code=CODE, egress=["api.stripe.com:443"], env={"MODE": "live"}, secrets={"K": "stripe"}
        ),
    )  # fmt: skip
    response = alice.client.post("/api/v1/functions/charge/invoke", {}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["egress"], body["env"], body["secrets"]) == (
        ["api.stripe.com:443"],
        {"MODE": "live"},
        {"K": "stripe"},
    )
