"""Durable runs end to end: real workers, real Docker, both runtimes. Side effects are counted through
what the run left behind (its log lines, its step records, its children), never guessed; timers are
fired with the reconciler's injected clock."""

from __future__ import annotations

import json
import signal
import time
from datetime import timedelta

import pytest
from django.conf import settings

from jobs.models import Attempt, Event, Job, LogLine, Status, Step
from jobs.services.reconcile import reconcile

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

RUNTIMES = ("python", "node")

# -- shared helpers -------------------------------------------------------------------------------


def submit(persona, runtime: str, code: str, args=(), **extra) -> str:
    body = {
        "runtime": runtime,
        "code": code,
        "args": list(args),
        "durable": True,
        "timeout_ms": 20000,
        **extra,
    }
    response = persona.post_job(body)
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def drive(run_worker, job_id: str, timeout: float = 60.0) -> Job:
    """Run workers and reconciler passes until the run has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_worker()
        job = Job.objects.get(pk=job_id)
        if job.is_finished:
            return job
        reconcile()
        time.sleep(0.05)
    job = Job.objects.get(pk=job_id)
    raise AssertionError(f"run {job_id} still {job.status}: {list(job.step_set.values('name', 'status'))}")


def lines(job_id: str, text: str) -> int:
    """How many log lines of the run contain ``text`` (every execution's)."""
    return LogLine.objects.filter(job_id=job_id, text__contains=text).count()


def steps(job_id: str) -> list[tuple]:
    return list(
        Step.objects.filter(job_id=job_id).order_by("seq").values_list("name", "kind", "status", "attempts")
    )


def deploy(persona, name: str, runtime: str, code: str, **extra) -> None:
    body = {"name": name, "runtime": runtime, "code": code, **extra}
    response = persona.client.post(
        "/api/v1/functions", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 201, response.json()


def post_event(persona, event: str, key: str, data=None):
    body = {"event": event, "key": key, "data": data}
    return persona.client.post("/api/v1/events", data=json.dumps(body), content_type="application/json")


# -- a recorded step is never run again -------------------------------------------------------------

SAGA = {
    "python": """
def main(ctx, order):
    charged = ctx.step("charge", lambda: print("charging", order) or {"charge": "ch_" + order})

    def ship():
        print("shipping try", ctx.attempt)
        if ctx.attempt < 2:
            raise RuntimeError("carrier down")
        return {"tracking": ctx.step_id}

    shipped = ctx.step("ship", ship, retries=2, backoff_s=0.2)
    return {"charge": charged["charge"], "tracking": shipped["tracking"]}
""",
    "node": """
async function main(ctx, order) {
  const charged = await ctx.step('charge', () => {
    console.log('charging', order);
    return { charge: 'ch_' + order };
  });
  const shipped = await ctx.step('ship', async () => {
    console.log('shipping try', ctx.attempt);
    if (ctx.attempt < 2) throw new Error('carrier down');
    return { tracking: ctx.stepId };
  }, { retries: 2, backoffS: 0.2 });
  return { charge: charged.charge, tracking: shipped.tracking };
}
""",
}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_recorded_step_is_not_run_again_when_a_later_step_is_retried(alice, run_worker, runtime):
    job_id = submit(alice, runtime, SAGA[runtime], ["o-1"])
    job = drive(run_worker, job_id)
    assert job.status == Status.SUCCEEDED, job.error
    assert job.result == {"charge": "ch_o-1", "tracking": f"{job_id}:ship"}  # step_id: stable across tries
    assert lines(job_id, "charging o-1") == 1  # the recorded step ran once, though the run ran twice
    assert lines(job_id, "shipping try") == 2
    assert steps(job_id) == [("charge", "step", "succeeded", 1), ("ship", "step", "succeeded", 2)]
    ship = Step.objects.get(job_id=job_id, name="ship")
    assert ship.input == {"retries": 2, "backoff_s": 0.2} and ship.error is None
    assert list(job.attempt_set.order_by("number").values_list("status", flat=True)) == [
        "suspended",
        "succeeded",
    ]
    body = alice.client.get(f"/api/v1/jobs/{job_id}/steps").json()
    assert [(s["name"], s["status"], s["attempts"]) for s in body["steps"]] == [
        ("charge", "succeeded", 1),
        ("ship", "succeeded", 2),
    ]
    assert body["complete"] is True and body["steps"][0]["result"] == {"charge": "ch_o-1"}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_deployed_durable_function_runs_as_a_durable_run(alice, run_worker, runtime):
    """A version's cells (Python: forks of its zygote, which pass the record channel on) run it."""
    deploy(alice, "saga", runtime, SAGA[runtime], durable=True)
    version = alice.client.get("/api/v1/functions/saga/versions/1").json()
    assert version["durable"] is True
    for order in ("o-7", "o-8"):  # the second in the warm cell the first left
        response = alice.client.post(
            "/api/v1/functions/saga/invoke",
            data=json.dumps({"args": [order]}),
            content_type="application/json",
        )
        job_id = response.json()["id"]
        assert response.json()["durable"] is True
        job = drive(run_worker, job_id)
        assert job.result == {"charge": f"ch_{order}", "tracking": f"{job_id}:ship"}, job.error
        assert (lines(job_id, f"charging {order}"), lines(job_id, "shipping try")) == (1, 2)


# -- a worker killed mid-run ------------------------------------------------------------------------

CRASHY = """
import time

def main(ctx):
    a = ctx.step("a", lambda: print("a ran", flush=True) or 1)

    def slow():
        print("b started", flush=True)
        time.sleep(3)
        return 2

    return a + ctx.step("b", slow)
"""


def test_a_run_whose_worker_is_sigkilled_resumes_with_its_steps_replayed(alice, docker_client):
    from jobs.tests.test_chaos import Stack, wait_until

    stack = Stack(settings.REDIS_URL)
    try:
        stack.start("reconciler", "scheduler")
        victim = stack.start("worker-a", "worker")
        job_id = submit(alice, "python", CRASHY)
        assert wait_until(lambda: lines(job_id, "b started") == 1, timeout=60), stack.report()
        assert steps(job_id) == [("a", "step", "succeeded", 1)]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        stack.start("worker-b", "worker")
        assert wait_until(lambda: Job.objects.get(pk=job_id).is_finished, timeout=60), stack.report()
    finally:
        stack.stop()
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.result) == (Status.SUCCEEDED, 3), job.error
    assert lines(job_id, "a ran") == 1  # replayed from its record after the kill
    assert lines(job_id, "b started") == 2  # it had not been recorded: run again
    assert steps(job_id) == [("a", "step", "succeeded", 1), ("b", "step", "succeeded", 1)]
    assert list(job.attempt_set.order_by("number").values_list("status", flat=True)) == ["lost", "succeeded"]


# -- sleeping holds nothing -------------------------------------------------------------------------

SLEEPER = {
    "python": """
def main(ctx):
    ctx.step("before", lambda: print("before") or 1)
    ctx.sleep("nap", 30)
    return ctx.step("after", lambda: "woke")
""",
    "node": """
async function main(ctx) {
  await ctx.step('before', () => { console.log('before'); return 1; });
  await ctx.sleep('nap', 30);
  return ctx.step('after', () => 'woke');
}
""",
}
QUICK = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_sleeping_run_holds_no_worker_or_slot_and_resumes_on_time(alice, run_worker, runtime):
    alice.tenant.quota.max_concurrency = 1  # one slot: the sleeping run must not hold it
    alice.tenant.quota.save()
    job_id = submit(alice, runtime, SLEEPER[runtime])
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == Status.WAITING and job.lease_expires_at is None
    nap = Step.objects.get(job_id=job_id, name="nap")
    assert nap.status == "waiting" and job.next_attempt_at == nap.wake_at
    assert nap.wake_at - job.created_at >= timedelta(seconds=30)
    assert alice.client.get("/api/v1/usage").json()["concurrency"]["in_use"] == 0

    other = alice.post_job(QUICK).json()  # an unrelated job starts at once on the only worker
    assert Job.objects.get(pk=other["id"]).status == "dispatched"  # the slot is free
    run_worker()
    assert Job.objects.get(pk=other["id"]).result == 5
    assert Job.objects.get(pk=job_id).status == Status.WAITING

    reconcile(now=nap.wake_at - timedelta(seconds=1))  # not yet
    assert Job.objects.get(pk=job_id).status == Status.WAITING
    reconcile(now=nap.wake_at)  # its time: queued (and in line) in the same pass
    assert Job.objects.get(pk=job_id).status in (Status.QUEUED, Status.DISPATCHED)
    job = drive(run_worker, job_id)
    assert (job.status, job.result) == (Status.SUCCEEDED, "woke")
    assert lines(job_id, "before") == 1
    assert steps(job_id) == [
        ("before", "step", "succeeded", 1),
        ("nap", "sleep", "succeeded", 1),
        ("after", "step", "succeeded", 1),
    ]
    # billed for its two executions only, never for the 30 s it slept
    assert job.billed_ms == sum(job.attempt_set.values_list("billed_ms", flat=True)) < 10_000


# -- fan-out and fan-in -----------------------------------------------------------------------------

SQUARE = {
    "python": "def main(x):\n    if x == 13:\n        raise ValueError('unlucky')\n    return x * x\n",
    "node": "function main(x) {\n  if (x === 13) throw new RangeError('unlucky');\n  return x * x;\n}\n",
}
FAN_OUT = {
    "python": """
def main(ctx, n):
    try:
        squares = ctx.map("squares", "square", list(range(n)))
        return {"sum": sum(squares), "failed": []}
    except ctx.ChildFailed as exc:
        return {
            "sum": sum(r for r in exc.results if r is not None),
            "failed": [i for i, e in enumerate(exc.errors) if e],
            "why": exc.errors[13]["message"],
        }
""",
    "node": """
async function main(ctx, n) {
  try {
    const squares = await ctx.map('squares', 'square', Array.from({ length: n }, (_, i) => i));
    return { sum: squares.reduce((a, b) => a + b, 0), failed: [] };
  } catch (e) {
    if (!(e instanceof ctx.ChildFailed)) throw e;
    return {
      sum: e.results.filter((r) => r !== null).reduce((a, b) => a + b, 0),
      failed: e.errors.map((err, i) => (err ? i : null)).filter((i) => i !== null),
      why: e.errors[13].message,
    };
  }
}
""",
}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_map_of_a_hundred_children_with_one_failing_is_caught_by_its_parent(alice, run_worker, runtime):
    deploy(alice, "square", runtime, SQUARE[runtime])
    job_id = submit(alice, runtime, FAN_OUT[runtime], [100])
    job = drive(run_worker, job_id, timeout=180)
    assert job.status == Status.SUCCEEDED, job.error
    assert job.result == {"sum": sum(i * i for i in range(100) if i != 13), "failed": [13], "why": "unlucky"}
    children = Job.objects.filter(parent_id=job_id)
    assert children.count() == 100
    assert set(children.values_list("parent_step", "trigger", "trigger_name")) == {(1, "parent", "squares")}
    assert children.filter(status=Status.SUCCEEDED).count() == 99
    assert sorted(children.values_list("child_index", flat=True)) == list(range(100))
    body = alice.client.get(f"/api/v1/jobs/{job_id}").json()
    assert body["durable"] is True and body["children_count"] == 100 and len(body["children"]) == 100
    child = alice.client.get(f"/api/v1/jobs/{body['children'][13]['id']}").json()
    assert (child["parent"], child["status"], child["trigger"]) == (
        job_id,
        "failed",
        {"kind": "parent", "name": "squares"},
    )
    step = alice.client.get(f"/api/v1/jobs/{job_id}/steps").json()["steps"][0]
    assert (step["kind"], step["status"], len(step["children"])) == ("map", "failed", 100)
    assert step["error"]["errors"][13]["type"] == ("ValueError" if runtime == "python" else "RangeError")


# -- events -----------------------------------------------------------------------------------------

APPROVAL = {
    "python": """
def main(ctx, order, timeout):
    try:
        decision = ctx.wait_for_event("approval", "approved", key=order, timeout_s=timeout)
    except ctx.EventTimeout:
        return "timed out"
    return ctx.step("ship", lambda: {"shipped": order, "by": decision["by"]})
""",
    "node": """
async function main(ctx, order, timeout) {
  let decision;
  try {
    decision = await ctx.waitForEvent('approval', 'approved', order, timeout);
  } catch (e) {
    if (e instanceof ctx.EventTimeout) return 'timed out';
    throw e;
  }
  return ctx.step('ship', () => ({ shipped: order, by: decision.by }));
}
""",
}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_wait_for_an_event_resumes_on_it_and_times_out_without_it(alice, bob, run_worker, runtime):
    approved = submit(alice, runtime, APPROVAL[runtime], ["order-1", 3600])
    forgotten = submit(alice, runtime, APPROVAL[runtime], ["order-2", 5])
    run_worker()
    assert set(Job.objects.filter(pk__in=[approved, forgotten]).values_list("status", flat=True)) == {
        "waiting"
    }

    # another tenant's event of the same name and key reaches none of alice's runs
    assert post_event(bob, "approved", "order-1", {"by": "mallory"}).json()["resumed"] == 0
    reply = post_event(alice, "approved", "order-1", {"by": "ana"})
    assert reply.status_code == 202 and reply.json()["resumed"] == 1
    job = drive(run_worker, approved)
    assert job.result == {"shipped": "order-1", "by": "ana"}
    assert Step.objects.get(job_id=approved, name="approval").event_id == reply.json()["id"]

    timeout = Step.objects.get(job_id=forgotten, name="approval")
    assert Job.objects.get(pk=forgotten).status == Status.WAITING
    reconcile(now=timeout.wake_at)
    job = drive(run_worker, forgotten)
    assert job.result == "timed out"
    assert steps(forgotten) == [("approval", "event", "failed", 1)]
    assert Step.objects.get(job_id=forgotten).error["type"] == "EventTimeout"


def test_an_event_sent_before_the_wait_is_found_without_suspending(alice, run_worker):
    job_id = submit(alice, "python", APPROVAL["python"], ["order-3", 60])
    post_event(alice, "approved", "order-3", {"by": "early"})  # the run began before the event came
    job = drive(run_worker, job_id)
    assert job.result == {"shipped": "order-3", "by": "early"}
    assert list(job.attempt_set.values_list("status", flat=True)) == ["succeeded"]  # never waited


# -- cancel, determinism, limits, tenants ---------------------------------------------------------------

PARENT = "def main(ctx):\n    return ctx.map('fan', 'square', [[1], [2], [3]])\n"


def test_cancelling_a_run_cancels_its_children(alice, sandbox_pool):
    from jobs import execution

    deploy(alice, "square", "python", SQUARE["python"])
    job_id = submit(alice, "python", PARENT)
    execution.job_execute(job_id=job_id)  # the parent's first execution only: it starts 3 children
    assert Job.objects.get(pk=job_id).status == Status.WAITING
    children = Job.objects.filter(parent_id=job_id)
    assert children.count() == 3 and not children.filter(status__in=["cancelled", "succeeded"]).exists()
    response = alice.client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert set(children.values_list("status", flat=True)) == {"cancelled"}
    assert steps(job_id) == [("fan", "map", "cancelled", 1)]


DETERMINISM = {  # the first step's name: the run's code is changed from the first to the second
    "python": "def main(ctx):\n    ctx.step('{}', lambda: 1)\n    ctx.sleep('nap', 9)\n    return 'done'\n",
    "node": "async function main(ctx) {{\n  await ctx.step('{}', () => 1);\n  await ctx.sleep('nap', 9);\n}}",
}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_run_that_asks_for_other_steps_than_it_recorded_fails_with_a_determinism_error(
    alice, run_worker, runtime
):
    first, changed = DETERMINISM[runtime].format("charge"), DETERMINISM[runtime].format("refund")
    job_id = submit(alice, runtime, first, max_retries=2)
    run_worker()
    Job.objects.filter(pk=job_id).update(code=changed)  # its code no longer asks for what it recorded
    reconcile(now=Step.objects.get(job_id=job_id, name="nap").wake_at)
    job = drive(run_worker, job_id)
    assert job.status == Status.FAILED  # never retried: it would ask the same again
    assert job.error["type"] == "DeterminismError"
    assert "'charge' (step)" in job.error["message"] and "'refund' (step)" in job.error["message"]
    assert job.attempts == 2


def test_a_run_over_its_step_limit_fails_with_that_error(alice, run_worker):
    alice.tenant.quota.max_steps_per_run = 3
    alice.tenant.quota.save()
    code = "def main(ctx):\n    return [ctx.step(f's{i}', lambda: i) for i in range(5)]\n"
    job = drive(run_worker, submit(alice, "python", code))
    assert job.status == Status.FAILED and job.error["type"] == "StepLimitExceeded"
    assert Step.objects.filter(job=job).count() == 3


def test_children_and_events_never_cross_tenants(alice, bob, run_worker):
    deploy(bob, "bobs-only", "python", "def main():\n    return 'bob'\n")
    code = """
def main(ctx):
    try:
        return ctx.invoke("theirs", "bobs-only", [])
    except ctx.ChildFailed as exc:
        return exc.error["type"]
"""
    job = drive(run_worker, submit(alice, "python", code))
    assert job.result == "FunctionNotFound"
    assert not Job.objects.filter(tenant=bob.tenant).exists()  # nothing was started for bob
    assert bob.client.get(f"/api/v1/jobs/{job.id}/steps").status_code == 404
    post_event(alice, "ping", "k", 1)
    assert Event.objects.get().tenant_id == alice.tenant.id


def test_a_retry_of_a_failed_run_resumes_at_its_failed_step(alice, run_worker):
    code = """
def main(ctx, fail):
    ctx.step("one", lambda: print("one ran") or 1)
    def two():
        print("two ran")
        if fail:
            raise RuntimeError("no")
        return 2
    return ctx.step("two", two)
"""
    job = drive(run_worker, submit(alice, "python", code, [True]))
    assert job.status == Status.FAILED and job.error["type"] == "StepFailed"
    Job.objects.filter(pk=job.id).update(args=[False])  # what went wrong is mended
    assert alice.client.post(f"/api/v1/jobs/{job.id}/retry").status_code == 202
    job = drive(run_worker, str(job.id))
    assert (job.status, job.result) == (Status.SUCCEEDED, 2)
    assert (lines(str(job.id), "one ran"), lines(str(job.id), "two ran")) == (1, 2)
    assert Attempt.objects.filter(job=job).count() == 2


HOSTILE = {  # what the job's own code writes on fd 5, bypassing ctx
    "garbage": "b'\\x00\\x00\\x00\\x05hello'",  # a record that is not JSON
    "oversize": "b'\\x7f\\xff\\xff\\xff' + b'x' * 1000",  # one that says it is 2 GiB long
}


@pytest.mark.parametrize("kind, error", [("garbage", "RecordRefused"), ("oversize", "RecordLimitExceeded")])
def test_what_a_process_writes_on_its_record_channel_cannot_break_the_cell(alice, run_worker, kind, error):
    code = f"import os\n\ndef main(ctx):\n    os.write(5, {HOSTILE[kind]})\n    return 'ignored'\n"
    job = drive(run_worker, submit(alice, "python", code, max_retries=2))
    assert (job.status, job.error["type"], job.attempts) == (
        Status.FAILED,
        error,
        1,
    )  # refused, never retried
    assert not Step.objects.filter(job=job).exists()
    after = alice.post_job(QUICK).json()["id"]  # the same tenant's next job, in the cell that ran it
    run_worker()
    assert Job.objects.get(pk=after).result == 5
