"""The functions API against PostgreSQL and Redis: deploy, versions, aliases, invoke, errors, ownership.
Builds and runs are in test_builds.py (Docker and the package registries)."""

from __future__ import annotations

import json

import pytest

from functions.models import Alias, BuildStatus, Function, FunctionVersion
from functions.services.invoke import functions_changed
from jobs.models import Job, Status
from lambdasite.redis_client import build_queue_name, get_queue, get_redis

from .support import PY_ADD, call, deploy, invoke

pytestmark = pytest.mark.django_db


def test_deploying_without_dependencies_gives_a_ready_version_1(alice):
    response = deploy(alice, description="adds")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "adder" and body["runtime"] == "python" and body["latest_version"] == 1
    assert body["version"]["number"] == 1 and body["version"]["status"] == "ready"
    assert len(body["version"]["content_hash"]) == 64
    assert response["Location"] == "/api/v1/functions/adder"
    assert get_queue(build_queue_name()).count == 0  # nothing to build


def test_deploying_with_requirements_queues_a_build(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = deploy(alice, requirements="six==1.16.0\n").json()
    assert body["version"]["status"] == "building" and body["version"]["content_hash"] is None
    assert body["version"]["requirements"] == "six==1.16.0\n"
    assert get_queue(build_queue_name()).count == 1


def test_the_list_shows_each_function_as_its_own_get_does(alice):
    """The list once answered latest_ready_version and aliases null for every function."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    deploy(alice, name="adder")
    call(alice, "POST", "/api/v1/functions/adder/versions", {"code": PY_ADD + "# v2\n"})
    call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", {"version": 1})
    call(alice, "PUT", "/api/v1/functions/adder/aliases/canary", {"version": 1, "additional_version": 2,
                                                                  "weight": 0.25})  # fmt: skip
    deploy(alice, name="building", requirements="six==1.16.0\n")  # no version ready yet
    deploy(alice, name="older")
    call(alice, "POST", "/api/v1/functions/older/versions", {"code": PY_ADD, "requirements": "six==1.16.0\n"})

    listed = call(alice, "GET", "/api/v1/functions").json()
    assert [f["name"] for f in listed] == ["adder", "building", "older"]
    for body in listed:
        assert body == call(alice, "GET", f"/api/v1/functions/{body['name']}").json()
    by_name = {f["name"]: f for f in listed}
    assert by_name["adder"]["latest_ready_version"] == 2
    assert [a["name"] for a in by_name["adder"]["aliases"]] == ["canary", "prod"]
    assert by_name["adder"]["aliases"][0]["additional_version"] == 2
    assert by_name["building"]["latest_ready_version"] is None and by_name["building"]["aliases"] == []
    assert by_name["older"]["latest_ready_version"] == 1 and by_name["older"]["latest_version"] == 2

    with CaptureQueriesContext(connection) as three:
        call(alice, "GET", "/api/v1/functions")
    for n in range(5):
        deploy(alice, name=f"more-{n}")
        call(alice, "PUT", f"/api/v1/functions/more-{n}/aliases/prod", {"version": 1})
    with CaptureQueriesContext(connection) as eight:
        assert len(call(alice, "GET", "/api/v1/functions").json()) == 8
    assert len(eight.captured_queries) == len(three.captured_queries)  # no query per function


def test_the_same_code_and_lock_give_the_same_content_hash(alice):
    first = deploy(alice, name="one").json()["version"]["content_hash"]
    second = deploy(alice, name="two").json()["version"]["content_hash"]
    changed = call(alice, "POST", "/api/v1/functions/one/versions", {"code": PY_ADD + "# v2\n"}).json()
    assert first == second != changed["content_hash"]
    assert changed["number"] == 2


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"name": "Bad Name"}, "name", 400),
        ({"name": "x" * 65}, "name", 400),
        ({"runtime": "ruby"}, "runtime", 400),
        ({"code": "   "}, "code", 400),
        ({"handler": "not-an-identifier"}, "handler", 400),
        ({"requirements": "--index-url http://127.0.0.1:5432/\nsix"}, "requirements", 400),
        ({"requirements": "six @ https://example.com/six.whl"}, "requirements", 400),
        ({"requirements": "-e git+https://example.com/x.git"}, "requirements", 400),
        ({"requirements": "not a requirement !!"}, "requirements", 400),
        ({"requirements": "six\nSix==1\n"}, "requirements", 400),
        ({"dependencies": {"is-number": "7"}}, "dependencies", 400),  # Node's field on Python
        ({"timeout_ms": 10_000_000}, "timeout_ms", 400),
        ({"surprise": 1}, "surprise", 400),
    ],
)
def test_bad_deploys_are_clear_400s(alice, body, field, status):
    payload = {"name": "fn", "runtime": "python", "code": PY_ADD, **body}
    response = call(alice, "POST", "/api/v1/functions", payload)
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert field in error["message"] or field in str(error["details"])
    assert not Function.objects.exists()


@pytest.mark.parametrize(
    "dependencies",
    [
        {"x": "git+https://example.com/x.git"},
        {"x": "file:../x"},
        {"x": "https://example.com/x.tgz"},
        {"x": "github:user/repo"},
        {"X Bad": "1.0.0"},
        ["is-number"],
    ],
)
def test_node_dependencies_are_registry_names_and_ranges_only(alice, dependencies):
    response = deploy(alice, runtime="node", code="function main() { return 1; }", dependencies=dependencies)
    assert response.status_code == 400
    assert "dependencies" in response.json()["error"]["message"]


def test_a_second_function_with_the_same_name_is_a_409_and_the_cap_is_enforced(alice):
    assert deploy(alice).status_code == 201
    again = deploy(alice)
    assert again.status_code == 409 and again.json()["error"]["code"] == "function_exists"
    quota = alice.tenant.quota
    quota.max_functions = 2
    quota.save()
    assert deploy(alice, name="second").status_code == 201
    over = deploy(alice, name="third")
    # a fixed cap: waiting cannot help, so a 403 with no Retry-After (was 429, "retry in an hour")
    assert over.status_code == 403 and "Retry-After" not in over
    assert over.json()["error"]["code"] == "quota_exceeded"
    assert over.json()["error"]["details"] == {"quota": "max_functions", "limit": 2}


def test_versions_are_immutable(alice):
    deploy(alice)
    for method in ("PUT", "PATCH", "DELETE"):
        response = call(alice, method, "/api/v1/functions/adder/versions/1", {"code": "def main(): return 0"})
        assert response.status_code == 405, method
    detail = call(alice, "GET", "/api/v1/functions/adder/versions/1").json()
    assert detail["code"] == PY_ADD and detail["lock"] == ""


def test_a_new_version_keeps_the_functions_settings_unless_given(alice):
    deploy(alice, handler="main", timeout_ms=2000)
    body = {"code": "def run(a, b):\n    return a * b\n", "handler": "run"}
    v2 = call(alice, "POST", "/api/v1/functions/adder/versions", body).json()
    assert v2["number"] == 2 and v2["handler"] == "run"
    listed = call(alice, "GET", "/api/v1/functions/adder/versions").json()
    assert [v["number"] for v in listed] == [2, 1]
    assert call(alice, "GET", "/api/v1/functions/adder").json()["handler"] == "run"


def test_invoking_by_name_queues_a_job_that_names_function_version_and_alias(alice):
    deploy(alice)
    call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", {"version": 1})
    plain = invoke(alice, "adder", [2, 3])
    assert plain.status_code == 202, plain.json()
    body = plain.json()
    assert (body["function"], body["version"], body["alias"]) == ("adder", 1, None)
    by_alias = invoke(alice, "adder", [2, 3], qualifier="prod").json()
    assert (by_alias["version"], by_alias["alias"]) == (1, "prod")
    by_number = invoke(alice, "adder", [2, 3], qualifier="1").json()
    assert by_number["version"] == 1
    job = Job.objects.get(pk=body["id"])
    assert job.code == "" and job.function.name == "adder" and job.function_version.number == 1
    assert job.status == Status.QUEUED or job.status == Status.DISPATCHED


def test_invoking_a_building_version_holds_the_job_and_a_failed_one_is_a_409(
    alice, django_capture_on_commit_callbacks
):
    deploy(alice, requirements="six\n")
    held = invoke(alice, "adder", [1, 2])
    assert held.status_code == 202
    job = Job.objects.get(pk=held.json()["id"])
    assert job.status == Status.QUEUED and job.next_attempt_at is None  # not dispatched before the build
    with django_capture_on_commit_callbacks(execute=True):  # as the build's end does
        FunctionVersion.objects.filter(number=1).update(
            status=BuildStatus.FAILED, build_error="six: no wheel"
        )
        functions_changed(alice.tenant.id)
    failed = invoke(alice, "adder", [1, 2])
    assert failed.status_code == 409
    assert (
        failed.json()["error"]["code"] == "version_failed" and "no wheel" in failed.json()["error"]["message"]
    )


def test_idempotent_invocations_return_the_first_job(alice):
    deploy(alice)
    first = invoke(alice, "adder", [1, 1], HTTP_IDEMPOTENCY_KEY="k-1")
    again = invoke(alice, "adder", [1, 1], HTTP_IDEMPOTENCY_KEY="k-1")
    other = invoke(alice, "adder", [2, 2], HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 422


@pytest.mark.parametrize(
    ("qualifier", "code"),
    [("7", "version_not_found"), ("nope", "alias_not_found")],
)
def test_unknown_qualifiers_are_404s(alice, qualifier, code):
    deploy(alice)
    response = invoke(alice, "adder", [], qualifier=qualifier)
    assert response.status_code == 404 and response.json()["error"]["code"] == code


@pytest.mark.parametrize("qualifier", ["", "latest", "1", "prod", "7", "nope", "1234567890", "0001"])
def test_what_routes_and_schedules_accept_is_what_an_invocation_resolves(
    alice, qualifier, django_capture_on_commit_callbacks
):
    """One rule: ``qualifier_refusal`` (checked when a route or a schedule is saved) refuses exactly
    the qualifiers an invocation answers 404 for."""
    from functions.services.invoke import qualifier_refusal

    with django_capture_on_commit_callbacks(execute=True):
        deploy(alice)
        call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", {"version": 1})
    refusal = qualifier_refusal(function=Function.objects.get(), qualifier=qualifier)
    answer = invoke(alice, "adder", [1, 2], qualifier=qualifier)
    assert answer.status_code == (202 if refusal is None else 404), (refusal, answer.json())
    if refusal is not None:
        assert answer.json()["error"]["message"] == refusal


def raw_invoke(persona, name: str, body: str, query: str = ""):
    path = f"/api/v1/functions/{name}/invoke" + (f"?{query}" if query else "")
    return persona.client.post(path, data=body.encode(), content_type="application/json")


@pytest.mark.parametrize(
    "args",
    [
        "[" * 80 + "]" * 80,
        "[" * 600 + "]" * 600,  # once a RecursionError (a 500) in the depth check
        "[" * 1_000 + "]" * 1_000,
        "[" + '{"a":' * 700 + "1" + "}" * 700 + "]",
        "[1e400]",  # infinity: no JSON for it, PostgreSQL's jsonb refuses it
        '["\\u0000"]',  # PostgreSQL's jsonb refuses NUL
        '[{"\\u0000": 1}]',
    ],
)
def test_invoking_with_args_that_cannot_be_stored_is_a_400(alice, caplog, args):
    deploy(alice)
    response = raw_invoke(alice, "adder", f'{{"args": {args}}}')
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("validation_error", "malformed_json")
    assert not Job.objects.exists()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize("qualifier", ["%C2%B2", "%D9%A3", "1%C2%B2", "a%20b", "pr.od"])
def test_a_qualifier_that_can_name_nothing_is_a_400(alice, qualifier):
    deploy(alice)
    response = raw_invoke(alice, "adder", '{"args": [1, 2]}', query=f"qualifier={qualifier}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "qualifier" in error["message"]
    batch = call(alice, "POST", "/api/v1/jobs/batch", {"jobs": [{"function": "adder", "qualifier": "²"}]})
    assert batch.status_code == 400 and "qualifier" in batch.json()["error"]["message"]
    assert not Job.objects.exists()


def test_a_version_number_in_other_digits_is_a_404(alice):
    deploy(alice)
    for path in ("/api/v1/functions/adder/versions/²", "/api/v1/functions/adder/versions/٣/build-logs"):
        response = call(alice, "GET", path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "version_not_found"


def test_bad_invocations_are_400s(alice):
    deploy(alice)
    assert call(alice, "POST", "/api/v1/functions/adder/invoke", {"args": {"a": 1}}).status_code == 400
    assert call(alice, "POST", "/api/v1/functions/adder/invoke?wait=abc", {"args": []}).status_code == 400
    assert call(alice, "POST", "/api/v1/functions/adder/invoke", {"code": "x"}).status_code == 400
    assert call(alice, "POST", "/api/v1/functions/adder/invoke", "[1]").status_code == 400


def test_aliases_move_and_split_traffic(alice):
    deploy(alice)
    call(alice, "POST", "/api/v1/functions/adder/versions", {"code": PY_ADD + "# 2\n"})
    created = call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", {"version": 1})
    assert created.status_code == 201 and created.json()["version"] == 1
    moved = call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", {"version": 2})
    assert moved.status_code == 200 and moved.json()["version"] == 2
    canary = call(
        alice,
        "PUT",
        "/api/v1/functions/adder/aliases/prod",
        {"version": 1, "additional_version": 2, "weight": 0.5},
    ).json()
    assert canary["additional_version"] == 2 and canary["weight"] == 0.5
    versions = {invoke(alice, "adder", [], qualifier="prod").json()["version"] for _ in range(40)}
    assert versions == {1, 2}  # 40 calls at 50 %: both sides (a miss has odds of 2 in 10^12)
    assert [a["name"] for a in call(alice, "GET", "/api/v1/functions/adder/aliases").json()] == ["prod"]
    assert call(alice, "DELETE", "/api/v1/functions/adder/aliases/prod").status_code == 204
    assert not Alias.objects.exists()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"version": 9}, 404),
        ({"version": 1, "additional_version": 1, "weight": 0.1}, 400),
        ({"version": 1, "weight": 0.5}, 400),
        ({"version": 1, "additional_version": 2, "weight": 1.5}, 400),
        ({"version": "1"}, 400),
        ({}, 400),
    ],
)
def test_bad_aliases_are_refused(alice, body, status):
    deploy(alice)
    call(alice, "POST", "/api/v1/functions/adder/versions", {"code": PY_ADD + "# 2\n"})
    assert call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", body).status_code == status
    assert call(alice, "PUT", "/api/v1/functions/adder/aliases/latest", {"version": 1}).status_code == 400
    assert call(alice, "PUT", "/api/v1/functions/adder/aliases/7", {"version": 1}).status_code == 400


def test_another_tenants_function_is_a_404_on_every_endpoint(alice, bob):
    deploy(alice)
    call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", {"version": 1})
    base = "/api/v1/functions/adder"
    attempts = [
        ("GET", base, None),
        ("PATCH", base, {"provisioned": 0}),
        ("DELETE", base, None),
        ("GET", f"{base}/versions", None),
        ("POST", f"{base}/versions", {"code": PY_ADD}),
        ("GET", f"{base}/versions/1", None),
        ("GET", f"{base}/versions/1/build-logs", None),
        ("GET", f"{base}/aliases", None),
        ("GET", f"{base}/aliases/prod", None),
        ("PUT", f"{base}/aliases/prod", {"version": 1}),
        ("DELETE", f"{base}/aliases/prod", None),
        ("POST", f"{base}/invoke", {"args": [1, 2]}),
        ("POST", f"{base}/warm", {}),
    ]
    for method, path, body in attempts:
        response = call(bob, method, path, body)
        assert response.status_code == 404, (method, path, response.status_code)
        missing = call(bob, method, path.replace("adder", "nothing"), body)
        # exactly the answer for a function that does not exist (which names what was asked for)
        assert missing.json() == json.loads(json.dumps(response.json()).replace("adder", "nothing"))
    assert call(bob, "GET", "/api/v1/functions").json() == []
    batch = call(bob, "POST", "/api/v1/jobs/batch", {"jobs": [{"function": "adder", "args": [1, 2]}]})
    assert batch.status_code == 404
    assert Function.objects.get().versions.count() == 1 and Alias.objects.count() == 1
    assert not Job.objects.filter(tenant=bob.tenant).exists()


def test_a_batch_may_mix_code_and_functions(alice):
    deploy(alice)
    body = {
        "jobs": [
            {"function": "adder", "args": [1, 2]},
            {"runtime": "python", "code": PY_ADD, "args": [3, 4]},
            {"function": "adder", "qualifier": "1", "args": [5, 6]},
        ]
    }
    response = call(alice, "POST", "/api/v1/jobs/batch", body)
    assert response.status_code == 202, response.json()
    jobs = response.json()["jobs"]
    assert [j["function"] for j in jobs] == ["adder", None, "adder"]
    bad = call(alice, "POST", "/api/v1/jobs/batch", {"jobs": [body["jobs"][0], {"function": "nope"}]})
    assert bad.status_code == 404 and "jobs[1]" in bad.json()["error"]["message"]
    assert Job.objects.count() == 3  # all or nothing


def test_deleting_a_function_cancels_its_waiting_jobs_and_keeps_finished_ones_by_name(alice):
    deploy(alice)
    waiting = invoke(alice, "adder", [1, 2]).json()["id"]
    Job.objects.filter(pk=waiting).update(status=Status.QUEUED)
    assert call(alice, "DELETE", "/api/v1/functions/adder").status_code == 204
    job = Job.objects.get(pk=waiting)
    assert job.status == Status.CANCELLED and job.function is None
    assert (job.function_name, job.version_number) == ("adder", 1)
    assert call(alice, "GET", "/api/v1/functions/adder").status_code == 404
    assert call(alice, "GET", f"/api/v1/jobs/{waiting}").json()["function"] == "adder"


def test_provisioned_cells_are_capped_per_tenant(alice):
    quota = alice.tenant.quota
    quota.max_provisioned_cells = 3
    quota.save()
    assert deploy(alice, provisioned=2).status_code == 201
    over = deploy(alice, name="other", provisioned=2)
    assert over.status_code == 403 and "Retry-After" not in over
    assert over.json()["error"]["code"] == "quota_exceeded"
    assert over.json()["error"]["details"]["quota"] == "max_provisioned_cells"
    assert call(alice, "PATCH", "/api/v1/functions/adder", {"provisioned": 3}).json()["provisioned"] == 3
    over = call(alice, "PATCH", "/api/v1/functions/adder", {"provisioned": 4})
    assert over.status_code == 403 and "Retry-After" not in over
    assert call(alice, "PATCH", "/api/v1/functions/adder", {"provisioned": -1}).status_code == 400


def test_lookups_are_cached_until_the_tenant_changes_a_function(alice, django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from functions.services.invoke import function_view

    deploy(alice)
    with CaptureQueriesContext(connection) as first:
        assert function_view(tenant_id=alice.tenant.id, name="adder").latest_ready.number == 1
    with CaptureQueriesContext(connection) as second:
        assert function_view(tenant_id=alice.tenant.id, name="adder").latest_ready.number == 1
    assert len(first.captured_queries) >= 3 and len(second.captured_queries) == 0
    with django_capture_on_commit_callbacks(execute=True):
        call(alice, "POST", "/api/v1/functions/adder/versions", {"code": PY_ADD + "# 2\n"})
    assert (
        function_view(tenant_id=alice.tenant.id, name="adder").latest_ready.number == 2
    )  # the bump was seen
    with django_capture_on_commit_callbacks(execute=True):
        call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", {"version": 1})
    assert invoke(alice, "adder", [], qualifier="prod").json()["version"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", {"version": 2})
    assert invoke(alice, "adder", [], qualifier="prod").json()["version"] == 2
    get_redis().flushdb()  # a flushed Redis must not bring back what was cached before it
    with django_capture_on_commit_callbacks(execute=True):
        call(alice, "PUT", "/api/v1/functions/adder/aliases/prod", {"version": 1})
    assert invoke(alice, "adder", [], qualifier="prod").json()["version"] == 1


def test_the_schema_documents_every_function_endpoint(client):
    schema = client.get("/api/schema/").content.decode()
    for operation in (
        "functions_create",
        "functions_invoke",
        "functions_versions_create",
        "functions_aliases_set",
        "functions_build_logs",
        "functions_warm",
    ):
        assert operation in schema
