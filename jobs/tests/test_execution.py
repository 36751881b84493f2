"""Jobs submitted over the API, run by a real RQ worker in real Docker containers."""

from __future__ import annotations

import pytest

from jobs.models import Job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

EXAMPLES = {
    "python": {
        "add": (
            "def main(a, b):\n    print('Adding', a, 'and', b)\n    return a + b\n",
            [2, 3],
            5,
            ["Adding 2 and 3"],
        ),
        "sum": (
            "def main(numbers):\n    print('Processing array:', numbers)\n    return sum(numbers)\n",
            [[1, 2, 3, 4, 5]],
            15,
            ["Processing array: [1, 2, 3, 4, 5]"],
        ),
        "async": (
            "import asyncio\n\nasync def main(delay):\n    print('Waiting', delay, 'ms')\n"
            "    await asyncio.sleep(delay / 1000)\n    print('Done!')\n    return 'Completed'\n",
            [1000],
            "Completed",
            ["Waiting 1000 ms", "Done!"],
        ),
    },
    "node": {
        "add": (
            "function main(a, b) {\n  console.log('Adding', a, 'and', b);\n  return a + b;\n}\n",
            [2, 3],
            5,
            ["Adding 2 and 3"],
        ),
        "sum": (
            "function main(numbers) {\n  console.log('Processing array:', numbers);\n  "
            "return numbers.reduce((s, n) => s + n, 0);\n}\n",
            [[1, 2, 3, 4, 5]],
            15,
            ["Processing array: [ 1, 2, 3, 4, 5 ]"],
        ),
        "async": (
            "async function main(delay) {\n  console.log('Waiting', delay, 'ms');\n"
            "  await new Promise(resolve => setTimeout(resolve, delay));\n  "
            "console.log('Done!');\n  return 'Completed';\n}\n",
            [1000],
            "Completed",
            ["Waiting 1000 ms", "Done!"],
        ),
    },
}
CASES = [(runtime, name) for runtime, examples in EXAMPLES.items() for name in examples]


def submit_and_run(persona, run_worker, body: dict) -> dict:
    response = persona.post_job(body)
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    run_worker()
    detail = persona.client.get(f"/api/v1/jobs/{job_id}").json()
    return detail


@pytest.mark.parametrize("runtime, name", CASES)
def test_the_readme_examples_run_with_their_logs(alice, run_worker, runtime, name):
    code, args, expected, lines = EXAMPLES[runtime][name]
    job = submit_and_run(alice, run_worker, {"runtime": runtime, "code": code, "args": args})
    assert job["status"] == "succeeded", job["error"]
    assert job["result"] == expected
    assert job["exit_code"] == 0 and job["attempts"] == 1
    assert job["started_at"] and job["finished_at"] and job["queue_wait_ms"] >= 0 and job["duration_ms"] > 0
    if name == "async":
        assert job["duration_ms"] >= 1000
    logs = alice.client.get(f"/api/v1/jobs/{job['id']}/logs").json()
    assert [line["text"] for line in logs["lines"]] == lines
    assert [line["seq"] for line in logs["lines"]] == list(range(1, len(lines) + 1))
    assert {line["stream"] for line in logs["lines"]} == {"stdout"}
    assert logs["complete"] is True
    history = job["attempt_history"]
    assert len(history) == 1 and history[0]["status"] == "succeeded" and history[0]["worker"]


FAILURES = {
    "python": {
        "exception": (
            "def main():\n    print('about to fail')\n    raise ValueError('boom')\n",
            "failed",
            "ValueError",
            "boom",
        ),
        "syntax": ("def main(:\n    return 1\n", "failed", "SyntaxError", "invalid syntax"),
        "not_json": (
            "def main():\n    return {1, 2}\n",
            "failed",
            "ResultNotSerializable",
            "not JSON-serialisable",
        ),
        "no_handler": ("def other():\n    return 1\n", "failed", "LookupError", "main"),
        "timeout": ("def main():\n    while True:\n        pass\n", "timed_out", "Timeout", "1000 ms"),
    },
    "node": {
        "exception": (
            "function main() {\n  console.log('about to fail');\n  throw new Error('boom');\n}\n",
            "failed",
            "Error",
            "boom",
        ),
        "syntax": ("function main( {\n  return 1;\n}\n", "failed", "SyntaxError", ""),
        "not_json": (
            "function main() {\n  return 10n;\n}\n",
            "failed",
            "ResultNotSerializable",
            "not JSON-serialisable",
        ),
        "no_handler": ("function other() { return 1; }\n", "failed", "LookupError", "main"),
        "timeout": ("function main() {\n  for (;;) {}\n}\n", "timed_out", "Timeout", "1000 ms"),
        "unsettled": (
            "async function main() {\n  await new Promise(() => {});\n}\n",
            "failed",
            "UnsettledPromise",
            "never settled",
        ),
    },
}
FAILURE_CASES = [(runtime, name) for runtime, cases in FAILURES.items() for name in cases]


@pytest.mark.parametrize("runtime, name", FAILURE_CASES)
def test_failures_end_in_a_clear_terminal_state(alice, run_worker, runtime, name):
    code, status, etype, message = FAILURES[runtime][name]
    job = submit_and_run(alice, run_worker, {"runtime": runtime, "code": code, "timeout_ms": 1000})
    assert job["status"] == status
    assert job["result"] is None
    assert job["error"]["type"] == etype
    assert message in job["error"]["message"]
    assert job["finished_at"] is not None
    assert Job.objects.get(pk=job["id"]).is_finished
    if name == "timeout":
        assert 1000 <= job["duration_ms"] < 3000
        # the verdict says the process was computing, not waiting
        assert "the job's process was running after" in job["error"]["traceback"]


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_timeout_says_whether_the_job_was_waiting(alice, run_worker, runtime):
    code = {
        "python": "import time\ndef main():\n    time.sleep(60)\n",
        "node": "function main() {\n  return new Promise((resolve) => setTimeout(resolve, 60000));\n}\n",
    }[runtime]
    job = submit_and_run(alice, run_worker, {"runtime": runtime, "code": code, "timeout_ms": 1000})
    assert job["status"] == "timed_out" and job["error"]["type"] == "Timeout"
    traceback = job["error"]["traceback"]
    assert "the job's process was sleeping after" in traceback, traceback
    cpu_ms = int(traceback.split(" after ")[1].split(" ms")[0])
    assert cpu_ms < 500  # it waited: nearly no CPU


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_traceback_shows_the_users_frames_not_the_runners(alice, run_worker, runtime):
    code = FAILURES[runtime]["exception"][0]
    job = submit_and_run(alice, run_worker, {"runtime": runtime, "code": code})
    traceback = job["error"]["traceback"]
    assert "handler." in traceback
    assert "runner" not in traceback and "child.js" not in traceback
    assert ("line 3" in traceback) if runtime == "python" else ("handler.js:3" in traceback)
    logs = alice.client.get(f"/api/v1/jobs/{job['id']}/logs").json()["lines"]
    assert [line["text"] for line in logs] == ["about to fail"]


def test_stdout_and_stderr_are_told_apart(alice, run_worker):
    code = "import sys\ndef main():\n    print('out')\n    print('err', file=sys.stderr)\n    return None\n"
    job = submit_and_run(alice, run_worker, {"runtime": "python", "code": code})
    lines = alice.client.get(f"/api/v1/jobs/{job['id']}/logs").json()["lines"]
    assert {(line["stream"], line["text"]) for line in lines} == {("stdout", "out"), ("stderr", "err")}


def test_status_moves_queued_running_succeeded(alice, run_worker):
    response = alice.post_job({"runtime": "python", "code": "def main():\n    return 1\n"})
    assert response.json()["status"] == "queued"
    run_worker()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "succeeded"
    assert job.attempt_set.get().status == "succeeded"


def test_late_lines_of_a_superseded_attempt_never_collide_with_the_retry(alice):
    """A zombie attempt (its lease expired, a retry claimed the job) that kept writing used to store
    its late lines at the retry's line numbers: the retry's next batch then failed on the (job, seq)
    key. Its late lines are dropped now, before and after the retry has logged."""
    import time
    from datetime import timedelta

    from django.utils import timezone

    import sandbox
    from jobs.execution import LogWriter
    from jobs.models import LogLine
    from jobs.services import lifecycle
    from jobs.tests.support import QUICK

    def line(seq: int, text: str) -> sandbox.OutputLine:
        return sandbox.OutputLine(stream="stdout", seq=seq, ts=time.time(), text=text)

    job_id = alice.post_job(QUICK).json()["id"]
    zombie = LogWriter(*lifecycle.job_claim(job_id=job_id, worker="zombie"))
    zombie([line(1, "a1"), line(2, "a2")])
    assert lifecycle.job_expire_lease(job_id=job_id, now=timezone.now() + timedelta(hours=1))
    Job.objects.filter(pk=job_id).update(status="queued")  # due: as the reconciler's pass would
    job, attempt = lifecycle.job_claim(job_id=job_id, worker="retry")
    assert attempt.number == 2
    retry = LogWriter(job, attempt)
    zombie([line(3, "a3, late")])  # before the retry's first line
    retry([line(1, "b1"), line(2, "b2")])
    zombie([line(4, "a4, late")])  # and after it
    retry([line(3, "b3")])
    stored = LogLine.objects.filter(job_id=job_id).order_by("seq").values_list("attempt", "seq", "text")
    assert list(stored) == [(1, 1, "a1"), (1, 2, "a2"), (2, 3, "b1"), (2, 4, "b2"), (2, 5, "b3")]
    assert zombie.superseded and not retry.superseded
