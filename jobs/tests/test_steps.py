"""The host's side of durable runs without Docker (jobs.services.steps, recording and waits): an execution's
records are handed to its Session as the sandbox would hand them, attempts end with RunResults built
here, and timers fire on the reconciler's injected clock. PostgreSQL and Redis are real."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import sandbox
from functions.services.deploy import VersionSpec, function_create
from jobs.models import Job, Status, Step
from jobs.services import recording, steps, waits
from jobs.services.lifecycle import job_claim, job_finish
from jobs.services.reconcile import reconcile
from jobs.services.submit import JobSpec, job_submit

pytestmark = pytest.mark.django_db(transaction=True)
CODE = "def main(ctx):\n    return 1\n"


def durable_job(persona, **spec) -> Job:
    return job_submit(
        tenant=persona.tenant,
        api_key=persona.api_key,
        spec=JobSpec(runtime="python", code=CODE, durable=True, **spec),
    )[0]


class Execution:
    """One claimed attempt of a run and its recorder, as the worker holds them."""

    def __init__(self, job: Job) -> None:
        claimed = job_claim(job_id=job.id, worker="w")
        assert claimed is not None, Job.objects.get(pk=job.id).status
        self.job, self.attempt = claimed
        self.durable = steps.session_for(self.job, self.attempt.number)

    @property
    def journal(self) -> list[tuple]:
        return [(e["seq"], e["name"], e["status"]) for e in self.durable.journal]

    def record(self, **fields) -> dict:
        return self.durable.on_record(json.dumps(fields).encode())

    def end(self, status: str = "succeeded", result=None) -> Job:
        ran = steps.run_result(self.durable, sandbox.RunResult(status=status, result=result, duration_ms=2.0))
        return job_finish(job_id=self.job.id, attempt_number=self.attempt.number, result=ran, log_lines=0)


def step(seq: int, name: str, result=None, **fields) -> dict:
    return {"seq": seq, "name": name, "kind": "step", "ok": True, "result": result, **fields}


def test_records_are_stored_before_the_answer_and_a_wait_suspends_the_run(alice):
    job = durable_job(alice)
    run = Execution(job)
    assert run.record(**step(1, "charge", {"id": "ch_1"})) == {"ok": True}
    assert Step.objects.get(job=job, seq=1).result == {"id": "ch_1"}  # committed before the answer
    assert run.record(seq=2, name="nap", kind="sleep", seconds=60) == {"suspend": True}
    job = run.end()
    nap = Step.objects.get(job=job, seq=2)
    assert (job.status, job.next_attempt_at, nap.status) == (Status.WAITING, nap.wake_at, "waiting")
    assert job.attempt_set.get().status == "suspended"

    reconcile(now=nap.wake_at - timedelta(seconds=1))
    assert Job.objects.get(pk=job.id).status == Status.WAITING
    reconcile(now=nap.wake_at)
    reconcile(now=nap.wake_at + timedelta(seconds=1))  # a second pass finds nothing to do
    assert Job.objects.get(pk=job.id).status == Status.DISPATCHED
    run = Execution(job)
    assert run.journal == [(1, "charge", "succeeded"), (2, "nap", "succeeded")]
    assert run.end(result=1).status == Status.SUCCEEDED


def test_a_superseded_or_cancelled_execution_records_nothing(alice):
    job = durable_job(alice)
    run = Execution(job)
    Job.objects.filter(pk=job.id).update(attempts=2)  # a newer attempt holds the run (the lease ran out)
    assert run.record(**step(1, "a")) == {"stop": True}
    Job.objects.filter(pk=job.id).update(attempts=1, cancel_requested=True)
    assert run.record(**step(1, "a")) == {"stop": True}
    assert not Step.objects.filter(job=job).exists()


def test_an_execution_records_nothing_after_its_suspension(alice):
    run = Execution(durable_job(alice))
    assert run.record(seq=1, name="nap", kind="sleep", seconds=60) == {"suspend": True}
    assert run.record(seq=1, name="nap", kind="sleep", seconds=60)["fatal"]["type"] == "RecordRefused"
    assert run.record(**step(2, "more"))["fatal"]["type"] == "RecordRefused"
    assert Step.objects.count() == 1


def test_a_refused_record_ends_the_run_with_its_error_and_no_retry(alice):
    job = durable_job(alice, max_retries=3)
    run = Execution(job)
    run.record(**step(1, "a"))
    answer = run.record(**step(3, "c"))  # a gap: position 2 never came
    assert answer["fatal"]["type"] == "RecordRefused"
    job = run.end(result="whatever it said")
    assert (job.status, job.error["type"]) == (Status.FAILED, "RecordRefused")


def test_a_failed_step_with_retries_waits_for_its_next_try(alice):
    job = durable_job(alice)
    run = Execution(job)
    failure = {"ok": False, "error": {"type": "E", "message": "down"}, "retries": 1, "backoff_s": 10}
    assert run.record(**step(1, "ship", **failure)) == {"suspend": True}
    job = run.end()
    ship = Step.objects.get(job=job)
    assert (job.status, ship.status, ship.attempts) == (Status.WAITING, "retrying", 1)
    reconcile(now=ship.wake_at)
    run = Execution(job)
    assert run.journal == [(1, "ship", "retrying")]
    # its last try failed (the host counts the tries: a record saying "first try" again is its second)
    assert run.record(**step(1, "ship", **{**failure, "attempt": 1})) == {"ok": True}
    ship = Step.objects.get(job=job)
    assert (ship.status, ship.attempts) == ("failed", 2)


@pytest.fixture
def square(alice):
    function_create(
        tenant=alice.tenant, user=alice.user, name="square", runtime="python", spec=VersionSpec(code=CODE)
    )


def test_a_map_resumes_its_run_once_its_last_child_ends_with_results_in_order(alice, square):
    job = durable_job(alice)
    run = Execution(job)
    answer = run.record(
        seq=1, name="fan", kind="map", function="square", items=[[1], [2], [3]], qualifier=None
    )
    assert answer == {"suspend": True}
    job = run.end()
    children = list(Job.objects.filter(parent=job).order_by("child_index"))
    assert [(c.parent_step, c.child_index, c.trigger_name) for c in children] == [
        (1, 0, "fan"),
        (1, 1, "fan"),
        (1, 2, "fan"),
    ]
    for child, value in zip(reversed(children), (9, 4, 1), strict=True):  # they end in any order
        assert Job.objects.get(pk=job.id).status == Status.WAITING
        claimed, attempt = job_claim(job_id=child.id, worker="w")
        ran = sandbox.RunResult(status="succeeded", result=value, duration_ms=1.0)
        job_finish(job_id=child.id, attempt_number=attempt.number, result=ran, log_lines=0)
    fan = Step.objects.get(job=job)
    assert (fan.status, fan.result) == ("succeeded", [1, 4, 9])
    assert Job.objects.get(pk=job.id).status in (Status.QUEUED, Status.DISPATCHED)


def test_an_unknown_function_fails_the_step_and_starts_nothing(alice):
    job = durable_job(alice)
    run = Execution(job)
    answer = run.record(seq=1, name="one", kind="invoke", function="nope", args=[], qualifier=None)
    assert (
        answer["outcome"]["status"] == "failed" and answer["outcome"]["error"]["type"] == "FunctionNotFound"
    )
    assert not Job.objects.filter(parent=job).exists()


def test_an_event_resolves_a_waiting_run_exactly_once(alice, bob):
    job = durable_job(alice)
    run = Execution(job)
    assert run.record(seq=1, name="ok", kind="event", event="approved", key="o-1", timeout_s=60) == {
        "suspend": True
    }
    run.end()
    assert waits.event_publish(tenant=bob.tenant, name="approved", key="o-1", data=1)[1] == 0
    assert waits.event_publish(tenant=alice.tenant, name="approved", key="o-1", data={"by": "ana"})[1] == 1
    assert waits.event_publish(tenant=alice.tenant, name="approved", key="o-1", data={"by": "eve"})[1] == 0
    ok = Step.objects.get(job=job)
    assert (ok.status, ok.result) == ("succeeded", {"by": "ana"})
    reconcile(now=ok.started_at + timedelta(seconds=61))  # its timeout passes: nothing happens
    assert Step.objects.get(job=job).status == "succeeded"


def test_a_run_that_outlives_its_lifetime_while_children_run_fails_and_cancels_them(alice, square):
    job = durable_job(alice)
    run = Execution(job)
    run.record(seq=1, name="fan", kind="map", function="square", items=[[1], [2]], qualifier=None)
    job = run.end()
    fan = Step.objects.get(job=job)
    assert fan.wake_at == recording.run_deadline(job)
    reconcile(now=fan.wake_at)
    job = Job.objects.get(pk=job.id)
    assert (job.status, job.error["type"]) == (Status.FAILED, "RunLifetimeExceeded")
    assert set(Job.objects.filter(parent=job).values_list("status", flat=True)) == {"cancelled"}
    assert Step.objects.get(job=job).status == "cancelled"


def test_a_retry_of_a_failed_run_cuts_its_journal_at_the_failure(alice):
    job = durable_job(alice)
    run = Execution(job)
    run.record(**step(1, "one", 1))
    run.record(**step(2, "two", ok=False, result=None, error={"type": "E", "message": "m"}))
    job = run.end(status="failed")
    assert job.status == Status.FAILED
    assert steps.run_rewind(job) == 1
    assert list(Step.objects.filter(job=job).values_list("name", flat=True)) == ["one"]
