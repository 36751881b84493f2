"""The Secrets page and the deploy and new-job forms' network and configuration fields (Django's test
client, PostgreSQL and Redis): who may see and do what; a value never comes back to the browser."""

from __future__ import annotations

import pytest

from accounts.models import Membership
from accounts.services import membership_set, user_get_or_create
from functions.models import FunctionVersion
from functions.services import deploy
from vault.models import Secret
from vault.services import Actor, secret_put, secret_values

from .pages import signed_in

pytestmark = pytest.mark.django_db

VALUE = "sk_live_never-shown-0123456789"
ADD = "def main(a, b):\n    return a + b\n"
OWNER = Actor(label="owner", is_owner=True)
FORM = {"name": "fn", "runtime": "python", "handler": "main", "code": ADD, "requirements": "",
        "dependencies": "{}", "timeout_ms": "", "memory_mb": "", "max_retries": "", "description": "",
        "egress_mode": "none", "egress_allow": "", "secrets": "", "env": ""}  # fmt: skip


def member_of(persona, role: str):
    user = user_get_or_create(email=f"{role}@acme.test", password="pw")
    membership_set(tenant=persona.tenant, user=user, role=role)
    return signed_in(user)


def test_an_owner_sets_rotates_and_deletes_a_secret_and_never_sees_the_value_again(alice):
    web = signed_in(alice.user)
    created = web.post("/app/secrets/", {"name": "stripe", "value": VALUE + "\n", "trim": "1"})
    assert created.status_code == 302 and created["Location"] == "/app/secrets/"
    page = web.get("/app/secrets/")
    text = page.content.decode()
    assert "Secret stripe created (fingerprint" in text and VALUE not in text
    assert page["Cache-Control"] == "no-store"
    secret = Secret.objects.get()
    assert secret_values(tenant=alice.tenant, bindings={"K": "stripe"})[0].value == VALUE  # trimmed
    rotated = web.post("/app/secrets/", {"name": "stripe", "value": "new value"})
    assert rotated.status_code == 302
    text = web.get("/app/secrets/").content.decode()
    assert "rotated to revision 2" in text and "alice@acme.test" in text and "new value" not in text
    deleted = web.post(f"/app/secrets/{secret.name}/delete")
    assert deleted.status_code == 302 and "Secret stripe deleted" in web.get("/app/secrets/").content.decode()
    assert not Secret.objects.filter(deleted_at=None).exists()


def test_a_refused_secret_keeps_the_name_and_drops_the_value(alice):
    web = signed_in(alice.user)
    response = web.post("/app/secrets/", {"name": "bad name", "value": VALUE})
    text = response.content.decode()
    assert response.status_code == 400 and "letters, digits" in text and 'value="bad name"' in text
    assert VALUE not in text
    empty = web.post("/app/secrets/", {"name": "ok", "value": "  \n", "trim": "1"})
    assert empty.status_code == 400 and "may not be empty" in empty.content.decode()
    assert not Secret.objects.exists()


@pytest.mark.parametrize("role", [Membership.Role.MEMBER, Membership.Role.VIEWER])
def test_members_and_viewers_see_the_list_but_cannot_set_or_delete(alice, role):
    secret_put(tenant=alice.tenant, name="stripe", value=VALUE, actor=OWNER)
    web = member_of(alice, role)
    page = web.get("/app/secrets/").content.decode()
    assert "stripe" in page and "Set a secret" not in page and "Delete" not in page and VALUE not in page
    assert web.post("/app/secrets/", {"name": "stripe", "value": "x"}).status_code == 403
    assert web.post("/app/secrets/stripe/delete").status_code == 403
    assert secret_values(tenant=alice.tenant, bindings={"K": "stripe"})[0].value == VALUE


def test_another_tenants_secrets_are_not_listed_or_deleted(alice, bob):
    secret_put(tenant=bob.tenant, name="theirs", value=VALUE, actor=OWNER)
    web = signed_in(alice.user)
    assert "theirs" not in web.get("/app/secrets/").content.decode()
    web.post("/app/secrets/theirs/delete")
    assert Secret.objects.get(name="theirs").deleted_at is None


def test_the_navigation_links_the_secrets_page(alice):
    page = signed_in(alice.user).get("/app/secrets/").content.decode()
    assert '<a href="/app/secrets/" aria-current="page">Secrets</a>' in page


def test_the_deploy_form_sets_egress_secrets_and_env_and_the_version_page_shows_them(alice):
    secret_put(tenant=alice.tenant, name="stripe", value=VALUE, actor=OWNER)
    web = signed_in(alice.user)
    form = {**FORM, "egress_mode": "allowlist", "egress_allow": "api.stripe.com:443\r\n\r\n*.example.com:443",
            "secrets": "STRIPE_KEY = stripe", "env": "MODE=live\r\nGREETING=hello = world"}  # fmt: skip
    response = web.post("/app/functions/new", form)
    assert response.status_code == 302, response.content.decode()
    version = FunctionVersion.objects.get()
    assert (version.egress_mode, version.egress_allow) == (
        "allowlist",
        ["*.example.com:443", "api.stripe.com:443"],
    )
    assert version.secrets == {"STRIPE_KEY": "stripe"}
    assert version.env == {"GREETING": "hello = world", "MODE": "live"}
    page = web.get("/app/functions/fn/versions/1/").content.decode()
    assert "Network and configuration" in page and "api.stripe.com:443" in page
    assert "STRIPE_KEY" in page and "MODE=live" in page and VALUE not in page
    again = web.get("/app/functions/fn/deploy").content.decode()  # the next version's form starts from these
    assert "api.stripe.com:443" in again and "STRIPE_KEY=stripe" in again and "MODE=live" in again


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"egress_mode": "allowlist", "egress_allow": "api.example.com"}, "is not host:port"),
        ({"egress_mode": "allowlist", "egress_allow": ""}, "list at least one host:port"),
        ({"egress_mode": "allowlist", "egress_allow": "smtp.example.com:25"}, "port 25 is never reachable"),
        ({"egress_mode": "public"}, "beyond this tenant&#x27;s max_egress"),
        ({"egress_mode": "everything"}, "choose none, allowlist or public"),
        ({"env": "NO_EQUALS_SIGN"}, "line 1: write NAME=value"),
        ({"env": "PATH=/tmp"}, "reserved"),
        ({"env": "A=1\nA=2"}, "A is given twice"),
        ({"secrets": "KEY=missing"}, "no secret named missing"),
        ({"secrets": "KEY=bad name"}, "is not a secret name"),
        ({"secrets": "LD_PRELOAD=stripe"}, "reserved"),
    ],
)
def test_the_deploy_form_shows_what_is_wrong_with_network_and_configuration(alice, change, message):
    secret_put(tenant=alice.tenant, name="stripe", value=VALUE, actor=OWNER)
    response = signed_in(alice.user).post("/app/functions/new", {**FORM, **change})
    text = response.content.decode()
    assert response.status_code == 400 and message in text, text[text.find("field-error") - 200 :][:600]
    assert not FunctionVersion.objects.exists()


def test_a_form_without_the_new_fields_keeps_the_previous_versions(alice):
    """A page loaded before the fields existed posts without them: the version keeps its settings."""
    secret_put(tenant=alice.tenant, name="stripe", value=VALUE, actor=OWNER)
    function, _ = deploy.function_create(
        tenant=alice.tenant, user=alice.user, name="fn", runtime="python",
        spec=deploy.VersionSpec(code=ADD, egress=["a.example.com:443"], secrets={"K": "stripe"}),
    )  # fmt: skip
    old_form = {k: v for k, v in FORM.items() if k not in ("egress_mode", "egress_allow", "secrets", "env")}
    assert signed_in(alice.user).post("/app/functions/fn/deploy", old_form).status_code == 302
    latest = function.versions.order_by("-number").first()
    assert (latest.number, latest.egress_allow, latest.secrets) == (2, ["a.example.com:443"], {"K": "stripe"})


JOB_FORM = {"runtime": "python", "handler": "main", "code": ADD, "args": "[2, 3]", "timeout_ms": "",
            "memory_mb": "", "max_retries": "", "egress_mode": "none", "egress_allow": "", "secrets": "",
            "env": ""}  # fmt: skip


def test_the_new_job_form_sets_egress_secrets_and_env_and_run_again_carries_them(alice):
    from jobs.models import Job

    secret_put(tenant=alice.tenant, name="stripe", value=VALUE, actor=OWNER)
    web = signed_in(alice.user)
    page = web.get("/app/jobs/new").content.decode()
    assert 'name="egress_mode"' in page and 'name="secrets"' in page and 'name="env"' in page
    assert "this job's own" in page and "part of the version" not in page
    form = {**JOB_FORM, "egress_mode": "allowlist", "egress_allow": "api.stripe.com:443\r\n",
            "secrets": "STRIPE_KEY=stripe", "env": "MODE=live\r\nGREETING=hello = world"}  # fmt: skip
    response = web.post("/app/jobs/new", form)
    assert response.status_code == 302, response.content.decode()
    job = Job.objects.get()
    assert (job.egress_mode, job.egress_allow, job.secrets) == (
        "allowlist", ["api.stripe.com:443"], {"STRIPE_KEY": "stripe"}
    )  # fmt: skip
    assert job.env == {"GREETING": "hello = world", "MODE": "live"}
    again = web.get(f"/app/jobs/new?from={job.id}").content.decode()
    assert '<option value="allowlist" selected' in again and "api.stripe.com:443</textarea>" in again
    assert "STRIPE_KEY=stripe</textarea>" in again and "GREETING=hello = world\nMODE=live</textarea>" in again
    assert VALUE not in again


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"egress_mode": "allowlist", "egress_allow": ""}, "list at least one host:port"),
        ({"egress_mode": "allowlist", "egress_allow": "api.example.com"}, "is not host:port"),
        ({"egress_mode": "public"}, "Egress: public is beyond this tenant&#x27;s max_egress"),
        ({"env": "PATH=/tmp"}, "Environment: PATH is reserved"),
        ({"secrets": "KEY=missing"}, "no secret named missing"),
    ],
)
def test_the_new_job_form_shows_what_is_wrong_with_network_and_configuration(alice, change, message):
    from jobs.models import Job

    response = signed_in(alice.user).post("/app/jobs/new", {**JOB_FORM, **change})
    text = response.content.decode()
    assert response.status_code == 400 and message in text, text[text.find("field-error") - 200 :][:600]
    assert '<p class="field-error" role="alert">' in text  # beside its field, not above the form
    assert not Job.objects.exists()


def test_a_new_job_form_without_the_network_fields_runs_without_network(alice):
    from jobs.models import Job

    reach = ("egress_mode", "egress_allow", "secrets", "env")
    old_form = {k: v for k, v in JOB_FORM.items() if k not in reach}
    assert signed_in(alice.user).post("/app/jobs/new", old_form).status_code == 302
    job = Job.objects.get()
    assert (job.egress_mode, job.secrets, job.env) == ("none", {}, {})
