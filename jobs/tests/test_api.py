"""The jobs API contract: validation, the error envelope, ownership, pagination, schema."""

from __future__ import annotations

import json
import uuid

import pytest
from rest_framework.test import APIClient

from jobs.models import Job, LogLine
from jobs.services.submit import JobSpec, job_submit

pytestmark = pytest.mark.django_db

ADD = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    if field:
        assert field in body["error"]["message"]
    return body["error"]


def make_job(persona, **overrides) -> Job:
    spec = JobSpec(**{"runtime": "python", "code": ADD["code"], "args": [2, 3], **overrides})
    return job_submit(tenant=persona.tenant, api_key=persona.api_key, spec=spec)[0]


def test_it_accepts_a_job_with_202_and_links(alice):
    response = alice.post_job(ADD)
    assert response.status_code == 202
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    # the tenant has free slots: the job was dispatched in the submit's own transaction
    assert job.tenant == alice.tenant and job.status == "dispatched"
    assert body["links"]["self"] == f"/api/v1/jobs/{job.id}"
    assert body["links"]["logs"] == f"/api/v1/jobs/{job.id}/logs"
    assert response["Location"] == body["links"]["self"]
    assert body["limits"] == {"timeout_ms": 5000, "memory_mb": 128}
    assert body["max_retries"] == 0


def test_only_runtime_and_code_are_required(alice):
    response = alice.post_job({"runtime": "node", "code": "function main() { return 1; }"})
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.handler, job.args) == ("main", [])


@pytest.mark.parametrize(
    "body, field",
    [
        ({"runtime": "ruby", "code": "x"}, "runtime"),
        ({"code": "def main(): pass"}, "runtime"),
        ({"runtime": "python"}, "code"),
        ({"runtime": "python", "code": ""}, "code"),
        ({"runtime": "python", "code": "   \n"}, "code"),
        ({"runtime": "python", "code": 123}, "code"),
        ({"runtime": "python", "code": ["def main(): pass"]}, "code"),
        ({"runtime": "python", "code": "def main(): pass", "args": {"a": 1}}, "args"),
        ({"runtime": "python", "code": "def main(): pass", "args": "[1, 2]"}, "args"),
        ({"runtime": "python", "code": "def main(): pass", "timeout_ms": "5000"}, "timeout_ms"),
        ({"runtime": "python", "code": "def main(): pass", "timeout_ms": 5.5}, "timeout_ms"),
        ({"runtime": "python", "code": "def main(): pass", "timeout_ms": True}, "timeout_ms"),
        ({"runtime": "python", "code": "def main(): pass", "timeout_ms": 10}, "timeout_ms"),
        ({"runtime": "python", "code": "def main(): pass", "memory_mb": 1}, "memory_mb"),
        ({"runtime": "python", "code": "def main(): pass", "max_retries": -1}, "max_retries"),
        ({"runtime": "python", "code": "def main(): pass", "handler": "not valid!"}, "handler"),
        ({"runtime": "python", "code": "def main(): pass", "handler": 7}, "handler"),
        ({"runtime": "python", "code": "def main(): pass", "timeout": 5}, "timeout"),
        ({"runtime": "python", "code": "def main(): pass\x00"}, "code"),
        ({"runtime": "python", "code": "def main(): pass", "args": ["a\x00b"]}, "args"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(alice, body, field):
    error = assert_error(alice.post_job(body), 400, "validation_error", field)
    assert field in error["details"]["fields"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    "raw", ['{"runtime": "python", "code": ', "not json", '{"a": NaN}', "[1, 2]", '"str"', "null"]
)
def test_malformed_or_non_object_json_is_a_400(alice, raw):
    response = alice.client.post("/api/v1/jobs", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("malformed_json", "validation_error")


def test_deeply_nested_json_is_a_400_not_a_500(alice):
    raw = '{"runtime": "python", "code": "x", "args": ' + "[" * 100000 + "]" * 100000 + "}"
    response = alice.client.post("/api/v1/jobs", data=raw, content_type="application/json")
    assert response.status_code == 400


def test_a_non_json_content_type_is_a_415(alice):
    response = alice.client.post(
        "/api/v1/jobs", data="runtime=python", content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "field, value, cap",
    [
        ("timeout_ms", 60_001, "max_timeout_ms"),
        ("memory_mb", 513, "max_memory_mb"),
        ("max_retries", 11, "max_retries_cap"),
    ],
)
def test_limits_over_the_tenants_caps_are_400_naming_the_field(alice, field, value, cap):
    error = assert_error(alice.post_job({**ADD, field: value}), 400, "validation_error", field)
    assert error["details"]["limit"] == getattr(alice.tenant.quota, cap)


def test_caps_follow_the_tenants_quota(alice):
    alice.tenant.quota.max_timeout_ms = 1000
    alice.tenant.quota.save()
    assert_error(alice.post_job({**ADD, "timeout_ms": 2000}), 400, "validation_error", "timeout_ms")
    assert alice.post_job({**ADD, "timeout_ms": 1000}).status_code == 202


def test_code_and_args_over_their_caps_are_413_naming_the_field(alice):
    quota = alice.tenant.quota
    quota.max_code_bytes, quota.max_args_bytes = 100, 50
    quota.save()
    error = assert_error(alice.post_job({**ADD, "code": "#" * 101}), 413, "payload_too_large", "code")
    assert error["details"] == {"field": "code", "size": 101, "limit": 100}
    assert_error(alice.post_job({**ADD, "args": ["x" * 60]}), 413, "payload_too_large", "args")


def test_an_oversize_body_is_a_413(alice, settings):
    body = json.dumps({**ADD, "code": "#" * (settings.API_MAX_BODY_BYTES + 10)})
    response = alice.client.post("/api/v1/jobs", data=body, content_type="application/json")
    assert_error(response, 413, "payload_too_large")


def test_it_lists_the_tenants_jobs_newest_first_with_a_status_filter(alice, bob):
    first, second = make_job(alice), make_job(alice)
    make_job(bob)
    Job.objects.filter(pk=first.pk).update(status="succeeded")
    body = alice.client.get("/api/v1/jobs").json()
    assert [j["id"] for j in body["results"]] == [str(second.id), str(first.id)]
    filtered = alice.client.get("/api/v1/jobs?status=succeeded").json()["results"]
    assert [j["id"] for j in filtered] == [str(first.id)]
    both = alice.client.get("/api/v1/jobs?status=succeeded,dispatched").json()["results"]
    assert len(both) == 2
    assert "code" not in body["results"][0]


def test_it_paginates_with_a_cursor(alice):
    ids = [str(make_job(alice).id) for _ in range(5)]
    page = alice.client.get("/api/v1/jobs?limit=2").json()
    seen = [j["id"] for j in page["results"]]
    while page["next"]:
        page = alice.client.get(page["next"]).json()
        seen += [j["id"] for j in page["results"]]
    assert seen == list(reversed(ids))


@pytest.mark.parametrize("query", ["status=bogus", "runtime=ruby", "cursor=garbage"])
def test_bad_list_parameters_are_400(alice, query):
    assert_error(alice.client.get(f"/api/v1/jobs?{query}"), 400, "validation_error")


def test_a_non_numeric_page_size_falls_back_to_the_default(alice):
    make_job(alice)
    response = alice.client.get("/api/v1/jobs?limit=abc")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_logs_come_in_order_with_after(alice):
    from django.utils import timezone

    job = make_job(alice)
    LogLine.objects.bulk_create(
        [
            LogLine(
                job=job,
                attempt=1,
                seq=i,
                stream="stdout" if i % 2 else "stderr",
                ts=timezone.now(),
                text=f"line {i}",
            )
            for i in range(1, 6)
        ]
    )
    body = alice.client.get(f"/api/v1/jobs/{job.id}/logs").json()
    assert [line["seq"] for line in body["lines"]] == [1, 2, 3, 4, 5]
    assert body["lines"][1] | {"ts": None} == {
        "seq": 2,
        "attempt": 1,
        "stream": "stderr",
        "ts": None,
        "text": "line 2",
    }
    later = alice.client.get(f"/api/v1/jobs/{job.id}/logs?after=3").json()
    assert [line["seq"] for line in later["lines"]] == [4, 5]
    assert later["next_after"] == 5 and later["complete"] is False
    assert_error(alice.client.get(f"/api/v1/jobs/{job.id}/logs?after=-1"), 400, "validation_error", "after")
    assert_error(alice.client.get(f"/api/v1/jobs/{job.id}/logs?after=x"), 400, "validation_error", "after")


@pytest.mark.parametrize("path", ["/api/v1/jobs/{id}", "/api/v1/jobs/{id}/logs"])
def test_another_tenants_job_is_a_404_on_every_endpoint(alice, bob, path):
    job = make_job(alice)
    assert alice.client.get(path.format(id=job.id)).status_code == 200
    assert_error(bob.client.get(path.format(id=job.id)), 404, "not_found")


def test_another_tenants_job_never_appears_in_a_list(alice, bob):
    make_job(alice)
    assert bob.client.get("/api/v1/jobs").json()["results"] == []


@pytest.mark.parametrize("job_id", ["not-a-uuid", str(uuid.uuid4()), "1"])
def test_unknown_or_malformed_ids_are_404(alice, job_id):
    assert_error(alice.client.get(f"/api/v1/jobs/{job_id}"), 404, "not_found")


def test_unknown_api_paths_are_json_404(alice):
    assert_error(alice.client.get("/api/v1/nope"), 404, "not_found")


def test_wrong_method_is_a_405_envelope(alice):
    job = make_job(alice)
    assert_error(alice.client.put(f"/api/v1/jobs/{job.id}", {}, format="json"), 405, "method_not_allowed")


def test_runtimes_lists_versions_defaults_and_caps(alice):
    body = alice.client.get("/api/v1/runtimes").json()
    by_name = {r["name"]: r for r in body}
    assert set(by_name) == {"python", "node"}
    assert by_name["python"]["version"] == "3.11" and by_name["node"]["version"] == "22"
    assert by_name["python"]["defaults"]["timeout_ms"] == 5000
    assert by_name["node"]["caps"]["max_memory_mb"] == alice.tenant.quota.max_memory_mb


def test_the_schema_describes_every_endpoint(db):
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/logs", "/api/v1/runtimes"} <= set(
        paths
    )
    assert "202" in paths["/api/v1/jobs"]["post"]["responses"]


def test_the_docs_page_uses_only_local_assets(db):
    html = APIClient().get("/api/docs/").content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
    assert "/static/drf_spectacular_sidecar/" in html


def test_args_nested_past_the_depth_cap_are_a_400(alice):
    nested = []
    for _ in range(80):
        nested = [nested]
    assert_error(alice.post_job({**ADD, "args": nested}), 400, "validation_error", "args")


def nested_args(levels: int, inner: str = "[]", opener: str = "[") -> str:
    """``args`` nested ``levels`` deep, as text (json.dumps itself recurses once per level)."""
    closer = {"[": "]", '{"a":': "}"}[opener]
    return "[" + opener * (levels - 1) + inner + closer * (levels - 1) + "]"


def post_raw(persona, path: str, body: str):
    return persona.client.post(path, data=body.encode(), content_type="application/json")


@pytest.mark.parametrize("levels", [65, 500, 900, 990, 1_000, 5_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_args_nested_any_depth_are_a_400_never_a_500(alice, caplog, levels, opener):
    """~1,000 levels (a 1 KB body) once ended in RecursionError: a 500 and a 126 KB traceback."""
    args = nested_args(levels, opener=opener)
    code = json.dumps(ADD["code"])
    single = post_raw(alice, "/api/v1/jobs", f'{{"runtime": "python", "code": {code}, "args": {args}}}')
    batch = post_raw(
        alice, "/api/v1/jobs/batch", f'{{"jobs": [{{"runtime": "python", "code": {code}, "args": {args}}}]}}'
    )
    for response in (single, batch):
        error = assert_error(response, 400, response.json()["error"]["code"])
        assert error["code"] in ("validation_error", "malformed_json") and "nested" in error["message"]
    assert not Job.objects.exists()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize(
    "args, problem",
    [
        ("[1e400]", "finite"),
        ("[-1e400]", "finite"),
        ('[{"x": [1e999]}]', "finite"),
        ('["a\\u0000b"]', "NUL"),
        ('[{"k\\u0000": 1}]', "NUL"),
    ],
)
def test_args_that_cannot_be_stored_are_a_400(alice, args, problem):
    code = json.dumps(ADD["code"])
    response = post_raw(alice, "/api/v1/jobs", f'{{"runtime": "python", "code": {code}, "args": {args}}}')
    error = assert_error(response, 400, "validation_error", "args")
    assert problem in json.dumps(error["details"])
    batch = post_raw(
        alice, "/api/v1/jobs/batch", f'{{"jobs": [{{"runtime": "python", "code": {code}, "args": {args}}}]}}'
    )
    assert_error(batch, 400, "validation_error", "args")
    assert not Job.objects.exists()


def test_a_batch_items_qualifier_must_be_able_to_name_something(alice):
    response = alice.client.post(
        "/api/v1/jobs/batch", {"jobs": [{"function": "f", "qualifier": "²"}]}, format="json"
    )
    assert_error(response, 400, "validation_error", "qualifier")
