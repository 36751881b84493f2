"""What an attempt reached and was given lands in the rows when it ends: its connections (bounded,
numbered across attempts, purged with the job), the secret revisions it was given and the values
masked in its output, its egress bytes (usage, cost, metrics); and ``GET /api/v1/jobs/{id}/connections``
pages through them. The sandbox's RunResult is built here: PostgreSQL and Redis, no Docker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily

import sandbox
from accounts.models import ApiKey
from accounts.services import api_key_issue
from jobs import billing
from jobs.metrics import LambdasiteCollector
from jobs.models import Attempt, Connection, Job, Status
from jobs.services.lifecycle import job_claim, job_finish
from jobs.services.retention import jobs_purge
from jobs.services.submit import JobSpec, job_submit

pytestmark = pytest.mark.django_db
KIB = 1024


def submit(persona, **overrides) -> Job:
    spec = JobSpec(**{"runtime": "python", "code": "def main():\n    return 1\n", **overrides})
    return job_submit(tenant=persona.tenant, api_key=persona.api_key, spec=spec)[0]


def conn(host="api.example.com", port=443, verdict="allowed", sent=0, received=0, reason="", address=None):
    return sandbox.Connection(
        host=host,
        port=port,
        address=address if address is not None else ("203.0.113.7" if verdict == "allowed" else ""),
        verdict=verdict,
        reason=reason,
        bytes_sent=sent,
        bytes_received=received,
        started_at=time.time(),
        duration_ms=12.5,
    )


def run_attempt(job: Job, *connections, status="succeeded", **result) -> Job:
    claimed = job_claim(job_id=job.id, worker="w")
    assert claimed is not None
    number = claimed[1].number
    outcome = sandbox.RunResult(status=status, duration_ms=5.0, connections=tuple(connections), **result)
    return job_finish(job_id=job.id, attempt_number=number, result=outcome, log_lines=0)


def again(job: Job) -> None:
    """What the reconciler does when a retry is due."""
    Job.objects.filter(pk=job.id).update(status=Status.QUEUED)


def metric(name: str) -> dict:
    family = next(f for f in LambdasiteCollector().collect() if f.name == name)
    assert isinstance(family, CounterMetricFamily)
    return {tuple(s.labels.values())[0]: s.value for s in family.samples}


def test_a_finished_attempt_lands_its_connections_secret_revisions_and_masked_values(
    alice, django_capture_on_commit_callbacks
):
    job = submit(alice, egress=["api.example.com:443"])
    with django_capture_on_commit_callbacks(execute=True):
        finished = run_attempt(
            job,
            conn(sent=2 * KIB, received=30 * KIB),
            conn(host="metadata.example.com", port=80, verdict="denied", reason="not in the allowlist"),
            masked=3,
            secret_revisions=(("stripe", 2), ("github", 1)),
        )
    attempt = Attempt.objects.get(job=job, number=1)
    assert (attempt.masked, attempt.secret_revisions) == (3, [["stripe", 2], ["github", 1]])
    assert attempt.egress_bytes == finished.egress_bytes == 32 * KIB
    assert Job.objects.get(pk=job.id).egress_bytes == 32 * KIB
    rows = list(Connection.objects.filter(job=job).order_by("seq"))
    assert [(c.seq, c.attempt, c.host, c.port, c.verdict) for c in rows] == [
        (1, 1, "api.example.com", 443, "allowed"),
        (2, 1, "metadata.example.com", 80, "denied"),
    ]
    assert (rows[0].address, rows[0].bytes_sent, rows[0].bytes_received, rows[0].duration_ms) == (
        "203.0.113.7", 2 * KIB, 30 * KIB, 12.5
    )  # fmt: skip
    assert rows[1].reason == "not in the allowlist" and rows[1].address == ""
    assert abs((rows[0].started_at - timezone.now()).total_seconds()) < 60

    body = alice.client.get(f"/api/v1/jobs/{job.id}").json()
    (shown,) = body["attempt_history"]
    assert shown["secret_revisions"] == [
        {"secret": "stripe", "revision": 2},
        {"secret": "github", "revision": 1},
    ]
    assert (shown["masked"], shown["egress_bytes"], shown["connections_dropped"]) == (3, 32 * KIB, 0)
    assert body["egress_bytes"] == 32 * KIB
    assert (
        body["cost"] == billing.job_cost(finished) > billing.cost(gb_seconds=finished.gb_seconds, requests=1)
    )
    assert metric("lambdasite_egress_connections") == {"allowed": 1, "denied": 1}
    assert metric("lambdasite_egress_bytes") == {"sent": 2 * KIB, "received": 30 * KIB}


def test_egress_bytes_count_in_the_tenants_usage_and_cost(alice, settings):
    settings.PRICE_PER_GB_EGRESS = 0.5
    run_attempt(submit(alice, egress="none"), conn(sent=1 << 29, received=1 << 29))  # 1 GiB
    usage = alice.client.get("/api/v1/usage").json()
    assert usage["egress_bytes"] == 1 << 30
    assert usage["cost"]["egress"] == 0.5 and usage["cost"]["price_per_gb_egress"] == 0.5
    assert usage["cost"]["total"] == pytest.approx(usage["cost"]["compute"] + usage["cost"]["requests"] + 0.5)


def test_a_job_without_connections_records_nothing_and_costs_as_before(alice):
    finished = run_attempt(submit(alice))
    attempt = Attempt.objects.get(job=finished)
    assert (attempt.masked, attempt.secret_revisions, attempt.egress_bytes, attempt.connections_dropped) == (
        0, [], 0, 0
    )  # fmt: skip
    assert not Connection.objects.exists()
    assert billing.job_cost(finished) == round(billing.cost(gb_seconds=finished.gb_seconds, requests=1), 10)


def test_connections_past_the_cap_are_counted_not_recorded(
    alice, settings, django_capture_on_commit_callbacks
):
    settings.CONNECTIONS_RECORDED_PER_ATTEMPT = 3
    job = submit(alice)
    with django_capture_on_commit_callbacks(execute=True):
        finished = run_attempt(
            job,
            *[conn(host=f"h{i}.example.com", sent=10) for i in range(5)],
            connections_unrecorded=7,  # the proxy stopped recording: it counted them, and their bytes
            unrecorded_bytes_sent=70,
            unrecorded_bytes_received=700,
        )
    assert list(Connection.objects.filter(job=job).values_list("host", flat=True)) == [
        "h0.example.com", "h1.example.com", "h2.example.com"
    ]  # fmt: skip
    attempt = Attempt.objects.get(job=job)
    assert attempt.connections_dropped == 2 + 7  # over our cap, and what the proxy did not record
    assert attempt.egress_bytes == finished.egress_bytes == 5 * 10 + 70 + 700  # every byte is billed
    assert metric("lambdasite_egress_connections") == {"allowed": 5, "unrecorded": 7}
    assert metric("lambdasite_egress_bytes") == {"sent": 5 * 10 + 70, "received": 700}
    page = alice.client.get(f"/api/v1/jobs/{job.id}/connections").json()
    assert page["dropped"] == 9 and len(page["connections"]) == 3


def test_what_a_job_asked_for_is_stored_whatever_it_holds(alice):
    job = submit(alice)
    run_attempt(job, conn(host="a\x00b\ud800.example.com" + "x" * 300, verdict="denied", reason="r" * 500))
    stored = Connection.objects.get(job=job)
    assert stored.host.startswith("a\ufffdb\ufffd.example.com") and len(stored.host) == 255
    assert len(stored.reason) == 200


def test_connections_are_numbered_across_attempts_and_a_stale_attempts_are_kept(alice):
    job = submit(alice, max_retries=2)
    run_attempt(job, conn(host="one.example.com"), conn(host="two.example.com"), status="failed")
    again(job)
    claimed = job_claim(job_id=job.id, worker="w")  # attempt 2 ...
    again(job)
    run_attempt(job, conn(host="three.example.com"))  # ... lost its lease: attempt 3 finished the job
    stale = sandbox.RunResult(status="succeeded", connections=(conn(host="late.example.com", sent=7),))
    job_finish(job_id=job.id, attempt_number=claimed[1].number, result=stale, log_lines=0)
    rows = Connection.objects.filter(job=job).order_by("seq").values_list("seq", "attempt", "host")
    assert list(rows) == [
        (1, 1, "one.example.com"),
        (2, 1, "two.example.com"),
        (3, 3, "three.example.com"),
        (4, 2, "late.example.com"),
    ]
    assert Job.objects.get(pk=job.id).egress_bytes == 7


def test_the_endpoint_pages_by_seq_and_filters_by_attempt(alice):
    job = submit(alice, max_retries=1)
    run_attempt(job, conn(host="a.example.com"), conn(host="b.example.com"), status="failed")
    again(job)
    run_attempt(job, conn(host="c.example.com"), conn(host="d.example.com", verdict="denied", reason="no"))
    url = f"/api/v1/jobs/{job.id}/connections"
    first = alice.client.get(url, {"limit": 3}).json()
    assert [c["host"] for c in first["connections"]] == ["a.example.com", "b.example.com", "c.example.com"]
    assert (first["next_after"], first["complete"], first["attempt"], first["egress"]) == (
        3,
        False,
        None,
        "none",
    )
    rest = alice.client.get(url, {"limit": 3, "after": first["next_after"]}).json()
    (last,) = rest["connections"]
    assert (rest["next_after"], rest["complete"]) == (4, True)
    assert {k: last[k] for k in ("seq", "attempt", "host", "port", "address", "verdict", "reason")} == {
        "seq": 4, "attempt": 2, "host": "d.example.com", "port": 443,
        "address": "", "verdict": "denied", "reason": "no",
    }  # fmt: skip
    assert set(last) >= {"bytes_sent", "bytes_received", "started_at", "duration_ms"}
    second = alice.client.get(url, {"attempt": 2}).json()
    assert [c["seq"] for c in second["connections"]] == [3, 4] and second["attempt"] == 2
    assert alice.client.get(url, {"attempt": 3}).json()["connections"] == []


@pytest.mark.parametrize(
    "query", [{"attempt": "0"}, {"attempt": "x"}, {"after": "-1"}, {"limit": "0"}, {"limit": "1001"}]
)
def test_a_bad_query_is_a_400_naming_its_field(alice, query):
    job = submit(alice)
    response = alice.client.get(f"/api/v1/jobs/{job.id}/connections", query)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"].startswith(f"{next(iter(query))}:")


def test_another_tenants_job_is_not_found_and_a_read_only_key_may_read(alice, bob):
    job = submit(alice)
    run_attempt(job, conn())
    assert bob.client.get(f"/api/v1/jobs/{job.id}/connections").status_code == 404
    assert alice.client.get("/api/v1/jobs/not-a-uuid/connections").status_code == 404
    reader = api_key_issue(tenant=alice.tenant, name="reader", created_by=alice.user, scope=ApiKey.Scope.READ)
    alice.client.credentials(HTTP_AUTHORIZATION=f"Bearer {reader.plaintext}")
    response = alice.client.get(f"/api/v1/jobs/{job.id}/connections")
    assert response.status_code == 200 and len(response.json()["connections"]) == 1


def test_connections_go_with_their_job_when_it_is_purged(alice):
    alice.tenant.quota.retention_days = 30
    alice.tenant.quota.save()
    old, recent = submit(alice), submit(alice)
    run_attempt(old, conn(), conn())
    run_attempt(recent, conn())
    long_ago = timezone.now() - timedelta(days=400)
    Job.objects.filter(pk=old.id).update(started_at=long_ago, finished_at=long_ago)
    assert jobs_purge(dry_run=True).connections == 2
    purged = jobs_purge()
    assert (purged.jobs, purged.connections) == (1, 2)
    assert list(Connection.objects.values_list("job_id", flat=True)) == [recent.id]
