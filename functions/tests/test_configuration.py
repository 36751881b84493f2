"""A version's egress, env and secret bindings: validated at deploy (clear 4xx), within the tenant's
max_egress, part of the content hash, shown by the API, carried to the next version, and mapped to
the sandbox's RunSpec fields by run_environment."""

from __future__ import annotations

import pytest

import sandbox
from functions.models import FunctionVersion, content_hash
from functions.services.environment import run_environment
from vault.exceptions import UnknownSecret
from vault.services import Actor, secret_delete, secret_put

from .support import PY_ADD, call, deploy

pytestmark = pytest.mark.django_db
OWNER = Actor(label="owner", is_owner=True)


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    if field:
        assert error["message"].startswith((f"{field}:", f"{field}.")), error["message"]
    return error


def new_version(persona, **fields):
    return call(persona, "POST", "/api/v1/functions/adder/versions", {"code": PY_ADD, **fields})


def test_a_version_declares_egress_env_and_secrets_and_the_api_shows_them(alice):
    secret_put(tenant=alice.tenant, name="stripe", value="sk_live_x", actor=OWNER)
    body = deploy(
        alice,
        egress=["API.Stripe.com.:443", "*.example.com:443", "api.stripe.com:443", "[2001:DB8::1]:8443"],
        env={"LOG_LEVEL": "debug", "ZED": "", "ALPHABET": "a"},  # jsonb keeps keys by length: ZED first
        secrets={"STRIPE_KEY": "stripe"},
    ).json()["version"]
    assert body["egress"] == ["*.example.com:443", "[2001:db8::1]:8443", "api.stripe.com:443"]
    assert body["env"] == {"ALPHABET": "a", "LOG_LEVEL": "debug", "ZED": ""}
    assert body["secrets"] == {"STRIPE_KEY": "stripe"}
    shown = call(alice, "GET", "/api/v1/functions/adder/versions/1").json()
    assert list(shown["env"]) == ["ALPHABET", "LOG_LEVEL", "ZED"]  # by name, whatever order jsonb keeps
    assert (shown["egress"], shown["env"], shown["secrets"]) == (body["egress"], body["env"], body["secrets"])
    assert "sk_live_x" not in str(shown)


def test_a_version_without_them_reaches_nothing_and_keeps_its_old_hash(alice):
    body = deploy(alice).json()["version"]
    assert (body["egress"], body["env"], body["secrets"]) == ("none", {}, {})
    assert body["content_hash"] == content_hash(runtime="python", handler="main", code=PY_ADD, lock="")


@pytest.mark.parametrize(
    "fields",
    [{"egress": "public"}, {"egress": ["a.example.com:443"]}, {"env": {"A": "1"}}, {"secrets": {"K": "s"}}],
)
def test_egress_env_and_secrets_are_part_of_the_content_hash(alice, fields):
    secret_put(tenant=alice.tenant, name="s", value="v", actor=OWNER)
    alice.tenant.quota.max_egress = "public"
    alice.tenant.quota.save()
    plain = deploy(alice).json()["version"]["content_hash"]
    other = new_version(alice, **fields).json()
    assert other["content_hash"] != plain, fields
    again = new_version(alice, **fields).json()
    assert again["content_hash"] == other["content_hash"]


@pytest.mark.parametrize(
    "egress, says",
    [
        ("everything", 'must be "none", "public"'),
        ("allowlist", 'must be "none", "public"'),
        (443, 'must be "none", "public"'),
        ({"host": "a"}, 'must be "none", "public"'),
        ([1], 'must be "none", "public"'),
        (["api.example.com"], "is not host:port"),
        (["api.example.com:0"], "is not host:port"),
        (["api.example.com:99999"], "is not host:port"),
        (["mail.example.com:25"], "port 25 is never reachable"),
        (["*:443"], "wildcard"),
        (["a.*.example.com:443"], "wildcard may only be the first label"),
        (["*.com:443"], "two labels or more"),
        (["0x7f.1:443"], "write the address as"),
        (["2130706433:80"], "write the address as"),
        (["::1:443"], "is not host:port"),
        (["exa mple.com:443"], "is not a host name"),
        (["https://api.example.com:443"], "not"),
        ([""], "non-empty"),
        (["a.example.com:443"] * 101, "at most 100"),
    ],
)
def test_every_bad_egress_is_a_400_naming_egress(alice, egress, says):
    error = assert_error(deploy(alice, egress=egress), 400, "validation_error", "egress")
    assert says in error["message"], error["message"]
    assert not FunctionVersion.objects.exists()


@pytest.mark.parametrize(
    "env, says",
    [
        ([], "Expected a dictionary"),
        ("A=1", "Expected a dictionary"),
        ({"A": 1}, "valid string"),
        ({"A": None}, "null"),
        ({"1A": "x"}, "is not an environment variable name"),
        ({"A-B": "x"}, "is not an environment variable name"),
        ({"": "x"}, "is not an environment variable name"),
        ({"PATH": "/tmp"}, "reserved"),
        ({"http_proxy": "http://evil:3128"}, "reserved"),
        ({"HTTPS_PROXY": "x"}, "reserved"),
        ({"LD_PRELOAD": "/tmp/x.so"}, "reserved"),
        ({"PYTHONPATH": "/tmp"}, "reserved"),
        ({"NODE_OPTIONS": "--require /tmp/x"}, "reserved"),
        ({"LAMBDASITE_X": "1"}, "reserved"),
        ({"A": "a\u0000b"}, "Null characters"),
        ({"BIG": "x" * 4096}, "over the 4096-byte limit"),
    ],
)
def test_every_bad_env_is_a_400_naming_env(alice, env, says):
    error = assert_error(deploy(alice, env=env), 400, "validation_error", "env")
    assert says.lower() in error["message"].lower(), error["message"]


def test_env_may_hold_up_to_4_kb(alice):
    assert deploy(alice, env={"BIG": "x" * (4096 - 3)}).status_code == 201


@pytest.mark.parametrize(
    "secrets, says",
    [
        ([], "Expected a dictionary"),
        ({"K": 5}, "valid string"),
        ({"1K": "s"}, "is not an environment variable name"),
        ({"PATH": "s"}, "reserved"),
        ({"K": "not a name"}, "is not a secret name"),
        ({"K": "x" * 65}, "no more than 64"),
        ({f"K{i}": "s" for i in range(51)}, "at most 50 bindings"),
        ({"LOG_LEVEL": "s"}, "set by env too"),
    ],
)
def test_every_bad_secret_binding_is_a_400_naming_secrets(alice, secrets, says):
    secret_put(tenant=alice.tenant, name="s", value="v", actor=OWNER)
    error = assert_error(
        deploy(alice, env={"LOG_LEVEL": "x"}, secrets=secrets), 400, "validation_error", "secrets"
    )
    assert says in error["message"], error["message"]


def test_binding_a_secret_the_tenant_does_not_have_is_a_400_unknown_secret(alice, bob):
    secret_put(tenant=bob.tenant, name="theirs", value="bob's", actor=OWNER)
    secret_put(tenant=alice.tenant, name="mine", value="v", actor=OWNER)
    response = deploy(alice, secrets={"A": "mine", "B": "theirs", "C": "nowhere"})
    error = assert_error(response, 400, "unknown_secret", "secrets")
    assert error["details"]["missing"] == ["nowhere", "theirs"]  # another tenant's cannot be bound
    assert "bob's" not in response.content.decode()


def test_egress_beyond_the_tenants_max_egress_is_a_403(alice):
    error = assert_error(deploy(alice, egress="public"), 403, "egress_not_allowed", "egress")
    assert error["details"] == {"field": "egress", "quota": "max_egress", "limit": "allowlist",
                                "requested": "public"}  # fmt: skip
    alice.tenant.quota.max_egress = "none"
    alice.tenant.quota.save()
    assert_error(deploy(alice, egress=["a.example.com:443"]), 403, "egress_not_allowed")
    assert deploy(alice, egress="none").status_code == 201
    alice.tenant.quota.max_egress = "public"
    alice.tenant.quota.save()
    assert new_version(alice, egress="public").json()["egress"] == "public"


def test_the_next_version_keeps_egress_env_and_secrets_unless_given(alice):
    secret_put(tenant=alice.tenant, name="s", value="v", actor=OWNER)
    deploy(alice, egress=["a.example.com:443"], env={"A": "1"}, secrets={"K": "s"})
    kept = new_version(alice).json()
    assert (kept["egress"], kept["env"], kept["secrets"]) == (["a.example.com:443"], {"A": "1"}, {"K": "s"})
    changed = new_version(alice, env={}, egress="none").json()
    assert (changed["egress"], changed["env"], changed["secrets"]) == ("none", {}, {"K": "s"})
    secret_delete(tenant=alice.tenant, name="s", actor=OWNER)
    assert_error(new_version(alice), 400, "unknown_secret")  # a carried binding is checked again
    assert new_version(alice, secrets={}).status_code == 201


def test_run_environment_maps_a_version_to_the_sandbox_fields(alice):
    secret_put(tenant=alice.tenant, name="stripe", value="sk_1", actor=OWNER)
    deploy(alice, egress=["api.stripe.com:443"], env={"MODE": "live"}, secrets={"STRIPE_KEY": "stripe"})
    version = FunctionVersion.objects.get()
    egress, env, secrets = run_environment(version=version)
    assert egress == sandbox.Egress(mode="allowlist", allow=("api.stripe.com:443",))
    assert env == {"MODE": "live"}
    assert secrets == (sandbox.SecretValue(name="STRIPE_KEY", value="sk_1", revision=1, secret="stripe"),)
    secret_put(tenant=alice.tenant, name="stripe", value="sk_2", actor=OWNER)
    assert run_environment(version=version).secrets[0].value == "sk_2"  # a rotation reaches the next run
    assert run_environment(version=version).secrets[0].revision == 2
    secret_delete(tenant=alice.tenant, name="stripe", actor=OWNER)
    with pytest.raises(UnknownSecret, match="no secret named stripe"):
        run_environment(version=version)


def test_a_version_that_reaches_nothing_runs_as_before(alice):
    deploy(alice)
    assert run_environment(version=FunctionVersion.objects.get()) == (sandbox.Egress.NONE, {}, ())


def test_a_built_versions_hash_covers_its_egress_env_and_secrets_too(alice, monkeypatch):
    """A version with dependencies gets its hash when built (here: its layer exists, nothing to install)."""
    from functions.models import BuildStatus, DependencyLayer
    from functions.services import builds
    from sandbox import layers

    lock = "six==1.16.0 --hash=sha256:x\n"
    DependencyLayer.objects.create(
        digest=layers.lock_digest("python", lock), runtime="python", lock=lock,
        status=BuildStatus.READY, volume="lambdasite-layer-test",
    )  # fmt: skip
    monkeypatch.setattr(layers, "resolve", lambda *a, **k: layers.Resolved(lock=lock, packages=1))
    monkeypatch.setattr(layers, "exists", lambda client, volume: True)
    deploy(alice, requirements="six==1.16.0\n", env={"MODE": "live"}, egress=["a.example.com:443"])
    version = FunctionVersion.objects.get()
    builds.version_build(version_id=version.pk, worker="w1", client=object())
    version.refresh_from_db()
    assert version.status == BuildStatus.READY and version.lock == lock
    plain = content_hash(runtime="python", handler="main", code=PY_ADD, lock=lock)
    assert version.content_hash == version.hash_with(lock) != plain
