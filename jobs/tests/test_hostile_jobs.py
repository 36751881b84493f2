"""Hostile jobs through the whole worker path (real PostgreSQL, Redis and Docker): every accepted
job still ends, is billed for what it ran, and nothing it writes can stall or crash the worker.
Also: a retry is a new run and passes admission like a submission."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

import sandbox
from jobs import billing, execution
from jobs.models import Attempt, Job, LogLine, Status
from jobs.services import actions, lifecycle, reconcile, submit
from lambdasite.redis_client import get_redis

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def run_one(persona, run_worker, body: dict) -> Job:
    response = persona.post_job(body)
    assert response.status_code == 202, response.content
    run_worker()
    return Job.objects.get(pk=response.json()["id"])


HOSTILE = {
    "deep result on the result pipe": (
        "python",
        "import os\ndef main():\n    os.write(3, b'[' * 100000 + b']' * 100000)\n    return 1\n",
        "failed",
        "CorruptResult",
    ),
    "deep first line on the result pipe": (
        "node",
        "const fs = require('fs');\nfunction main() { fs.writeSync(4, '['.repeat(100000) "
        "+ '\\n'); return 1; }\n",
        "failed",
        "CorruptResult",
    ),
    "NaN on the result pipe": (
        "python",
        'import os\ndef main():\n    os.write(3, b\'{"ok": true, "result": NaN}\')\n    os._exit(0)\n',
        "failed",
        "CorruptResult",
    ),
    "a deeply nested return value": (
        "node",
        "function main() { let v = 1; for (let i = 0; i < 2000; i++) v = [v]; return v; }\n",
        "failed",
        "CorruptResult",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_result_bytes_end_the_job_once_and_are_billed(alice, run_worker, case):
    runtime, code, status, error = HOSTILE[case]
    job = run_one(alice, run_worker, {"runtime": runtime, "code": code})
    assert job.status == status and job.error["type"] == error, (job.status, job.error)
    assert job.attempts == 1  # ended, not handed back and rerun
    attempt = Attempt.objects.get(job=job)
    assert attempt.status == status and attempt.billed_ms >= 1 and attempt.gb_seconds > 0
    assert job.billed_ms == attempt.billed_ms


@pytest.mark.parametrize(
    "runtime, code",
    [
        ("python", "def main():\n    return {'s': '\\ud800', 'n': 'a\\x00b'}\n"),
        ("node", "function main() { return { s: '\\ud800', n: 'a\\u0000b' }; }\n"),
    ],
)
def test_a_lone_surrogate_or_nul_in_a_result_is_stored_as_replacement_characters(
    alice, run_worker, runtime, code
):
    job = run_one(alice, run_worker, {"runtime": runtime, "code": code})
    assert job.status == "succeeded", job.error
    assert job.result == {"s": "\ufffd", "n": "a\ufffdb"}
    assert alice.client.get(f"/api/v1/jobs/{job.id}").json()["result"] == {"s": "\ufffd", "n": "a\ufffdb"}


class FakePool:
    """One module's unit seam: a pool whose run returns or raises what a test needs."""

    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def run(self, spec, on_output=None, cancel=None):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def submit_one(persona) -> Job:
    return submit.job_submit(
        tenant=persona.tenant,
        api_key=persona.api_key,
        spec=submit.JobSpec(runtime="python", code="def main():\n    return 1\n"),
    )[0]


def test_what_postgresql_still_refuses_fails_the_attempt_instead_of_stalling_it(alice, monkeypatch):
    """The last line of defence behind the sandbox's scrubbing: an unstorable result."""
    monkeypatch.setattr(
        sandbox,
        "default",
        lambda: FakePool(sandbox.RunResult(status="succeeded", result=float("inf"), duration_ms=12.0)),
    )
    job = submit_one(alice)
    execution.job_execute(job_id=job.id)
    job.refresh_from_db()
    assert job.status == "failed" and job.error["type"] == "ResultNotStorable"
    assert job.billed_ms == 12


def test_an_exception_the_job_caused_is_its_own_billed_failure_not_a_hand_back(alice, monkeypatch):
    monkeypatch.setattr(
        sandbox, "default", lambda: FakePool(RecursionError("maximum recursion depth exceeded"))
    )
    job = submit_one(alice)
    execution.job_execute(job_id=job.id)
    job.refresh_from_db()
    assert job.status == "failed" and job.error["type"] == "ProcessingError"
    attempt = Attempt.objects.get(job=job)
    assert attempt.status == "failed" and attempt.billed_ms >= 1  # not "lost", not free


def test_a_worker_shutdown_hands_the_job_back_and_bills_what_ran(alice, monkeypatch):
    monkeypatch.setattr(sandbox, "default", lambda: FakePool(KeyboardInterrupt()))
    job = submit_one(alice)
    with pytest.raises(KeyboardInterrupt):
        execution.job_execute(job_id=job.id)
    job.refresh_from_db()
    assert job.status in ("queued", "dispatched")  # waiting again (and already dispatched to Redis)
    attempt = Attempt.objects.get(job=job)
    assert attempt.status == "lost" and attempt.billed_ms >= 1 and job.billed_ms == attempt.billed_ms


def test_a_sandbox_failure_mid_job_bills_the_user_code_that_ran(alice, monkeypatch):
    monkeypatch.setattr(
        sandbox,
        "default",
        lambda: FakePool(sandbox.SandboxError("cell died", code="cell_failed", ran_ms=250.0)),
    )
    job = submit_one(alice)
    execution.job_execute(job_id=job.id)
    job.refresh_from_db()
    attempt = Attempt.objects.get(job=job)
    assert attempt.error["type"] == "InternalError" and attempt.billed_ms == 250
    assert job.status == "retrying"  # still the system's failure for retries


def test_an_expired_lease_bills_until_the_last_renewal(alice, settings):
    job = submit_one(alice)
    lifecycle.job_claim(job_id=job.id, worker="w-dead")
    started = Attempt.objects.get(job=job).started_at
    # the worker renewed 3 s after the start, then died
    Job.objects.filter(pk=job.id).update(lease_expires_at=started + timedelta(seconds=3 + settings.LEASE_S))
    assert reconcile.reconcile(now=started + timedelta(seconds=60))["leases_expired"] == 1
    attempt = Attempt.objects.get(job=job)
    assert attempt.status == "lost" and attempt.billed_ms == 3000
    assert Job.objects.get(pk=job.id).billed_ms == 3000


# -- a retry is a new run -----------------------------------------------------------------


def _dead(persona) -> str:
    job_id = persona.post_job({"runtime": "python", "code": "def main():\n    return 1\n"}).json()["id"]
    Job.objects.filter(pk=job_id).update(status=Status.DEAD, finished_at=timezone.now())
    return job_id


def test_a_retry_is_refused_once_the_monthly_budget_is_spent(alice, client):
    job_id = _dead(alice)
    quota = alice.tenant.quota
    quota.monthly_gb_seconds = 0.001
    quota.save()
    Attempt.objects.create(
        job_id=job_id, number=1, started_at=timezone.now(), status="failed", billed_ms=100, gb_seconds=0.0125
    )
    with get_redis().pipeline() as pipe:  # what finishing an attempt tells Redis after its commit
        billing.add_usage(pipe, tenant_id=alice.tenant.id, gb_seconds=0.0125)
        pipe.execute()
    refused = alice.client.post(f"/api/v1/jobs/{job_id}/retry")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
    assert int(refused["Retry-After"]) > 0
    assert Job.objects.get(pk=job_id).status == Status.DEAD
    from django.test import Client

    web = Client()
    web.force_login(alice.user)
    page = web.post("/app/dead-letters/requeue", {"job": [job_id]}, follow=True)
    assert b"not requeued" in page.content and Job.objects.get(pk=job_id).status == Status.DEAD
    web.post(f"/app/jobs/{job_id}/retry")
    assert Job.objects.get(pk=job_id).status == Status.DEAD


def test_a_retry_takes_a_token_from_the_rate_limit(alice):
    quota = alice.tenant.quota
    quota.submissions_per_minute = 2
    quota.save()
    job_id = _dead(alice)  # the first token
    assert alice.client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 202  # the second
    Job.objects.filter(pk=job_id).update(status=Status.DEAD)
    refused = alice.client.post(f"/api/v1/jobs/{job_id}/retry")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"


def test_an_operator_requeue_in_the_admin_is_not_rate_limited(alice):
    quota = alice.tenant.quota
    quota.submissions_per_minute = 1
    quota.save()
    job_id = _dead(alice)
    actions.job_requeue(job=Job.objects.get(pk=job_id), by_operator=True)
    assert Job.objects.get(pk=job_id).status in (Status.QUEUED, Status.DISPATCHED)


# -- output floods and storage, with the real log writer -------------------------------------

FLOOD = {
    "python": "import sys\ndef main():\n    line = 'y\\n"
    "' * 4096\n    while True:\n        sys.stdout.write(line)\n        "
    "sys.stderr.write(line)\n",
    "node": "function main() {\n  const line = 'y\\n"
    "'.repeat(4096);\n  for (;;) { process.stdout.write(line); "
    "process.stderr.write(line); }\n}\n",
}


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_flooding_job_times_out_on_time_and_stores_a_bounded_log(alice, run_worker, runtime):
    job = run_one(alice, run_worker, {"runtime": runtime, "code": FLOOD[runtime], "timeout_ms": 3000})
    assert job.status == "timed_out", job.error
    attempt = Attempt.objects.get(job=job)
    took = (attempt.finished_at - attempt.started_at).total_seconds()
    assert took < 3.0 + 1.0, f"attempt took {took:.1f} s for a 3 s limit"
    rows = LogLine.objects.filter(job=job).count()
    assert rows <= alice.tenant.quota.max_log_lines + 3 and job.dropped_log_bytes > 0


def test_a_megabyte_of_newlines_stores_at_most_max_log_lines_rows(alice, run_worker):
    code = "import sys\ndef main():\n    sys.stdout.write('\\n' * (1 << 20))\n    return 'ok'\n"
    job = run_one(alice, run_worker, {"runtime": "python", "code": code})
    assert job.status == "succeeded"
    assert LogLine.objects.filter(job=job, stream="stdout").count() == 10_000
    assert LogLine.objects.filter(job=job).count() <= 10_003
    assert job.dropped_log_bytes == (1 << 20) - 10_000
    assert settings.LIVE_EVENTS  # and the log events went out in batches, not one per line


def test_cells_are_keyed_by_tenant_id_so_a_reused_slug_gets_no_old_cell(alice, run_worker, sandbox_pool):
    first = run_one(
        alice, run_worker, {"runtime": "python", "code": "import os\ndef main():\n    return os.getuid()\n"}
    )
    old_slug = alice.tenant.slug
    alice.tenant.slug = "acme-renamed"
    alice.tenant.save()
    from conftest import Persona

    impostor = Persona(old_slug, "eve@acme.test")  # a new tenant takes the freed slug
    second = run_one(
        impostor,
        run_worker,
        {"runtime": "python", "code": "import os\ndef main():\n    return os.getuid()\n"},
    )
    assert first.status == second.status == "succeeded"
    assert first.result != second.result
    first_cell = Attempt.objects.get(job=first).container_id
    assert Attempt.objects.get(job=second).container_id != first_cell
