"""The functions pages over HTTP (Django's test client, PostgreSQL and Redis): who may see and do what,
and what the forms refuse."""

from __future__ import annotations

import pytest

from accounts.models import Membership
from accounts.services import membership_set, user_get_or_create
from functions.models import Alias, Function
from functions.services import deploy
from jobs.models import Job

pytestmark = pytest.mark.django_db

ADD = "def main(a, b):\n    return a + b\n"


@pytest.fixture
def adder(alice):
    function, _ = deploy.function_create(
        tenant=alice.tenant,
        user=alice.user,
        name="adder",
        runtime="python",
        spec=deploy.VersionSpec(code=ADD),
    )
    return function


def signed_in(client, persona):
    client.force_login(persona.user)
    return client


def test_the_list_and_the_function_page_show_versions_aliases_and_code(client, alice, adder):
    deploy.version_create(
        function=adder, user=alice.user, spec=deploy.VersionSpec(code=ADD.replace("+", "-"))
    )
    signed_in(client, alice)
    listing = client.get("/app/functions/").content.decode()
    assert "adder" in listing and "v2" in listing
    page = client.get("/app/functions/adder/").content.decode()
    assert "v1" in page and "v2" in page and "return a - b" in page
    diff = client.get("/app/functions/adder/?version=2&compare=1").content.decode()
    assert "Changes from v1 to v2" in diff and 'class="del">-    return a + b' in diff
    version = client.get("/app/functions/adder/versions/1/").content.decode()
    assert "return a + b" in version and "Nothing to build" in version


def test_deploying_from_the_editor_makes_a_function_and_then_versions(client, alice):
    signed_in(client, alice)
    form = {"name": "mul", "runtime": "python", "handler": "main", "code": ADD.replace("+", "*"),
            "requirements": "", "dependencies": "{}", "timeout_ms": "", "memory_mb": "", "max_retries": "",
            "description": "multiplies"}  # fmt: skip
    response = client.post("/app/functions/new", form)
    assert response.status_code == 302 and response["Location"] == "/app/functions/mul/versions/1/"
    again = client.post("/app/functions/mul/deploy", {**form, "code": ADD})
    assert again["Location"] == "/app/functions/mul/versions/2/"
    assert Function.objects.get(name="mul").latest_number == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Bad Name"}, "lowercase"),
        ({"requirements": "--index-url http://evil/"}, "only package names"),
        ({"runtime": "node", "dependencies": "{not json"}, "not valid JSON"),
        ({"code": ""}, "blank"),
    ],
)
def test_the_deploy_form_shows_what_is_wrong(client, alice, change, message):
    signed_in(client, alice)
    form = {"name": "fn", "runtime": "python", "handler": "main", "code": ADD, "requirements": "",
            "dependencies": "{}", "timeout_ms": "", "memory_mb": "", "max_retries": "",
            "description": ""}  # fmt: skip
    response = client.post("/app/functions/new", {**form, **change})
    assert response.status_code == 400 and message in response.content.decode()
    assert not Function.objects.exists()


def test_aliases_and_invocations_from_the_page(client, alice, adder, django_capture_on_commit_callbacks):
    signed_in(client, alice)
    client.post("/app/functions/adder/alias", {"alias": "prod", "version": "1"})
    assert Alias.objects.get().version.number == 1
    response = client.post("/app/functions/adder/invoke", {"qualifier": "prod", "args": "[2, 3]"})
    job = Job.objects.get()
    assert response["Location"] == f"/app/jobs/{job.id}/"
    assert (job.function_name, job.version_number, job.alias, job.args) == ("adder", 1, "prod", [2, 3])
    page = client.get(f"/app/jobs/{job.id}/").content.decode()
    assert "via alias <code>prod</code>" in page and "return a + b" in page
    bad = client.post("/app/functions/adder/invoke", {"args": "{nope"}, follow=True)
    assert "JSON array" in bad.content.decode() and Job.objects.count() == 1


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"args": "[" * 900 + "]" * 900}, "nested"),  # once RecursionError: a 500
        ({"args": "[" * 50_000 + "]" * 50_000}, "nested"),
        ({"args": "[1e400]"}, "finite"),
        ({"args": "[NaN]"}, "finite"),
        ({"args": '["\\u0000"]'}, "NUL"),
        ({"args": '["\\ud800"]'}, "surrogate"),
        ({"args": "[1]", "qualifier": "²"}, "alias name or a version number"),
    ],
)
def test_the_invoke_form_shows_what_is_wrong_instead_of_failing(client, alice, adder, form, message):
    signed_in(client, alice)
    response = client.post("/app/functions/adder/invoke", form, follow=True)
    assert response.status_code == 200 and message in response.content.decode()
    assert not Job.objects.exists()


def test_viewers_see_but_cannot_deploy_alias_invoke_or_delete(client, alice, adder):
    viewer = user_get_or_create(email="vera@acme.test", password="pw")
    membership_set(tenant=alice.tenant, user=viewer, role=Membership.Role.VIEWER)
    client.force_login(viewer)
    assert client.get("/app/functions/adder/").status_code == 200
    for path, data in [
        ("/app/functions/new", {"name": "x"}),
        ("/app/functions/adder/deploy", {"code": ADD}),
        ("/app/functions/adder/alias", {"alias": "prod", "version": "1"}),
        ("/app/functions/adder/invoke", {"args": "[1, 2]"}),
        ("/app/functions/adder/delete", {}),
    ]:
        assert client.post(path, data).status_code == 403, path
    assert (
        Function.objects.get().latest_number == 1 and not Alias.objects.exists() and not Job.objects.exists()
    )


def test_another_tenants_functions_are_not_found(client, bob, adder):
    signed_in(client, bob)
    for path in (
        "/app/functions/adder/",
        "/app/functions/adder/versions/1/",
        "/app/functions/adder/versions/1/lines",
    ):
        assert client.get(path).status_code == 404, path
    for path in ("/app/functions/adder/invoke", "/app/functions/adder/delete", "/app/functions/adder/alias"):
        assert client.post(path, {"args": "[]", "alias": "x", "version": "1"}).status_code == 404, path
    assert "adder" not in client.get("/app/functions/").content.decode()
    assert Function.objects.filter(name="adder").exists()


@pytest.mark.parametrize("levels", [50, 900])
def test_the_deploy_form_refuses_dependencies_nested_deep_without_failing(client, alice, levels):
    signed_in(client, alice)
    form = {"name": "fn", "runtime": "node", "handler": "main", "code": "function main() {}",
            "requirements": "", "dependencies": '{"a":' * levels + '"1"' + "}" * levels,
            "timeout_ms": "", "memory_mb": "", "max_retries": "", "description": ""}  # fmt: skip
    response = client.post("/app/functions/new", form)
    assert response.status_code == 400 and "nested" in response.content.decode()
    assert not Function.objects.exists()


def test_the_flashes_say_what_is_true_after_the_redirect(client, alice, adder):
    """A deploy's flash does not state a build status the page's live badge may already contradict,
    and a canary alias's flash names its second version and share."""
    signed_in(client, alice)
    deployed = client.post("/app/functions/adder/deploy", {"code": ADD, "handler": "main"}, follow=True)
    page = deployed.content.decode()
    assert "Deployed adder version 2." in page and "(building)" not in page and "(ready)" not in page
    canary = client.post(
        "/app/functions/adder/alias",
        {"alias": "prod", "version": "1", "additional_version": "2", "weight": "0.1"},
        follow=True,
    )
    assert (
        "Alias prod now points to version 1 and sends 10% of calls to version 2." in canary.content.decode()
    )
    plain = client.post("/app/functions/adder/alias", {"alias": "stable", "version": "2"}, follow=True)
    assert "Alias stable now points to version 2." in plain.content.decode()


def test_the_flow_control_card_sets_and_clears_the_limits(client, alice, adder):
    alice.tenant.quota.max_concurrency = 10
    alice.tenant.quota.save()
    signed_in(client, alice)
    form = {"max_concurrency": "5", "reserved_concurrency": "2", "concurrency_key": "$[0].store_id",
            "concurrency_per_key": ""}  # fmt: skip
    page = client.post("/app/functions/adder/flow", form, follow=True).content.decode()
    assert "Flow control of adder saved." in page and "At most 5 at once." in page
    adder.refresh_from_db()
    assert (adder.max_concurrency, adder.reserved_concurrency, adder.concurrency_per_key) == (5, 2, 1)
    cleared = {
        "max_concurrency": "",
        "reserved_concurrency": "",
        "concurrency_key": "",
        "concurrency_per_key": "",
    }
    assert "No limits" in client.post("/app/functions/adder/flow", cleared, follow=True).content.decode()


@pytest.mark.parametrize(
    "form, message",
    [
        ({"concurrency_key": "$[0]..x"}, "Concurrency key: cannot read"),
        ({"max_concurrency": "0"}, "Max at once: must be at least 1"),
        ({"max_concurrency": "many"}, "Max at once: must be at least 1"),
        ({"reserved_concurrency": "4"}, "Reserved: 4 reserved in all would leave no room"),
        ({"concurrency_per_key": "2"}, "Per key: needs a Concurrency key"),
    ],
)
def test_the_flow_control_card_says_what_is_wrong(client, alice, adder, form, message):
    alice.tenant.quota.max_concurrency = 4
    alice.tenant.quota.save()
    signed_in(client, alice)
    response = client.post("/app/functions/adder/flow", form, follow=True)
    assert response.status_code == 200 and message in response.content.decode()
    adder.refresh_from_db()
    assert adder.max_concurrency is None and adder.reserved_concurrency == 0


def test_viewers_cannot_change_flow_control(client, alice, adder):
    viewer = user_get_or_create(email="vera@acme.test", password="pw")
    membership_set(tenant=alice.tenant, user=viewer, role=Membership.Role.VIEWER)
    client.force_login(viewer)
    assert client.post("/app/functions/adder/flow", {"max_concurrency": "1"}).status_code == 403
    adder.refresh_from_db()
    assert adder.max_concurrency is None
