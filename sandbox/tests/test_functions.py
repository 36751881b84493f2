"""Deployed functions in real cells: the module is initialised once per cell (Python: in a zygote that
forks every job), and nothing one job does reaches the next beyond what the initialisation left."""

from __future__ import annotations

import itertools

import pytest

from sandbox import Limits, RunSpec, Sandbox
from sandbox.spec import FunctionRef

pytestmark = pytest.mark.docker

_keys = itertools.count()


@pytest.fixture
def pool(docker_client):
    pool = Sandbox(client=docker_client)
    yield pool
    pool.close()


def function(code: str, handler: str = "main") -> FunctionRef:
    return FunctionRef(key=f"test-{next(_keys)}", code=code, handler=handler)


def call(pool, fn: FunctionRef, args=(), runtime: str = "python", tenant: str = "t-fn", **limits):
    lines = []
    spec = RunSpec(
        runtime=runtime, code="", args=list(args), tenant=tenant, function=fn, limits=Limits(**limits)
    )
    return pool.run(spec, lines.extend), [line.text for line in lines]


COUNTER = """
import os
print("initialising")
STATE = {"calls": 0, "zygote": os.getpid()}
open("/tmp/written-at-init", "w").write("x")
def main(n):
    STATE["calls"] += 1
    print("job", n)
    return {"calls": STATE["calls"], "pid": os.getpid(), "parent": os.getppid(), "zygote": STATE["zygote"],
            "tmp": sorted(os.listdir("/tmp"))}
"""


def test_the_module_initialises_once_per_cell_and_every_job_starts_from_that_state(pool):
    fn = function(COUNTER)
    first, first_lines = call(pool, fn, [1])
    assert first.status == "succeeded", first.error
    assert first.init_ms is not None and first.init_ms >= 0
    assert first_lines == ["initialising", "job 1"]  # init output belongs to the job that waited for it
    second, second_lines = call(pool, fn, [2])
    assert second.status == "succeeded", second.error
    assert second.reused and second.init_ms is None
    assert second_lines == ["job 2"]  # no second initialisation
    for result in (first.result, second.result):
        assert result["calls"] == 1  # the first job's change to module state did not reach the second
        assert result["parent"] == result["zygote"] != result["pid"]  # a fork of the initialised zygote
        assert result["tmp"] == []  # what the initialisation wrote to /tmp is gone before any job
    assert first.result["zygote"] == second.result["zygote"]
    assert first.result["pid"] != second.result["pid"]


def test_an_initialisation_error_fails_the_job_with_its_own_traceback_and_the_cell_tries_again(pool):
    fn = function("import json\nraise ValueError('bad config')\ndef main():\n    return 1\n")
    for _ in range(2):
        result, _ = call(pool, fn)
        assert result.status == "failed"
        assert result.error["type"] == "ValueError"
        assert "initialisation failed: bad config" in result.error["message"]
        assert 'File "handler.py", line 2' in result.error["traceback"]
        assert "lambdasite_runner" not in result.error["traceback"]


def test_a_missing_handler_is_reported(pool):
    result, _ = call(pool, function("def other():\n    return 1\n"))
    assert result.status == "failed"
    assert result.error["type"] == "LookupError"
    assert "'main'" in result.error["message"]


@pytest.mark.parametrize(
    ("setup", "word"),
    [
        (
            "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()",
            "thread",
        ),
        ("SHARED = open('/dev/null')", "file descriptor"),
        ("import mmap\nSHARED = mmap.mmap(-1, 4096)", "shared writable memory"),
        ("import subprocess\nCHILD = subprocess.Popen(['sleep', '60'])", "child process"),
        # hooks Python would call in the zygote itself, running the module's code between jobs
        ("import sys\nsys.settrace(lambda *a: None)", "sys.settrace"),
        ("import sys\nsys.setprofile(lambda *a: None)", "sys.setprofile"),
        ("import threading\nthreading.setprofile(lambda *a: None)", "threading.setprofile"),
        ("import gc\ngc.callbacks.append(lambda *a: None)", "gc.callbacks"),
    ],
)
def test_an_initialisation_may_not_leave_what_jobs_would_share(pool, setup, word):
    result, _ = call(pool, function(setup + "\ndef main():\n    return 1\n"))
    assert result.status == "failed"
    assert result.error["type"] == "InitLeftovers"
    assert word in result.error["message"]
    assert result.error["traceback"] == ""


@pytest.mark.parametrize(
    "attack",
    [
        "os.setpriority(os.PRIO_PROCESS, os.getppid(), 19)",
        "resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (8, 8))",
        "os.sched_setaffinity(os.getppid(), {0})",
        "os.kill(os.getppid(), signal.SIGSTOP)",
        "os.kill(os.getppid(), signal.SIGKILL)",
    ],
)
def test_a_job_that_changes_the_zygote_retires_the_cell(pool, attack):
    code = f"""
import os, resource, signal
def main(attack):
    if attack:
        {attack}
    return os.getppid()
"""
    fn = function(code)
    first, _ = call(pool, fn, [False])
    assert first.status == "succeeded", first.error
    import multiprocessing

    if "sched_setaffinity" in attack and multiprocessing.cpu_count() < 2:
        pytest.fail("this machine has one CPU: the affinity attack cannot change anything")
    attacked, _ = call(pool, fn, [True])
    assert attacked.status == "succeeded" or attacked.error["type"] in ("ProcessKilled", "ProcessExited")
    after, _ = call(pool, fn, [False])
    assert after.status == "succeeded", after.error
    assert after.init_ms is not None  # a fresh cell initialised the module again
    assert after.container_id != first.container_id


def test_a_timeout_or_a_fork_bomb_ends_the_job_and_the_function_serves_on(pool):
    code = """
import os, time
def main(kind):
    if kind == "loop":
        while True:
            pass
    if kind == "bomb":
        while True:
            try:
                os.fork()
            except OSError:
                pass
    return os.getppid()
"""
    fn = function(code)
    first, _ = call(pool, fn, ["ok"], timeout_ms=1500)
    assert first.status == "succeeded", first.error
    for kind in ("loop", "bomb"):
        result, _ = call(pool, fn, [kind], timeout_ms=1500)
        assert result.status == "timed_out"
        again, _ = call(pool, fn, ["ok"], timeout_ms=1500)
        assert again.status == "succeeded", again.error
        # a job that never reported retires its cell (host policy): a fresh cell initialises again
        assert again.container_id != result.container_id and again.init_ms is not None


def test_two_versions_never_share_a_cell(pool):
    one, _ = call(pool, function("def main():\n    return 1\n"))
    two, _ = call(pool, function("def main():\n    return 2\n"))
    assert (one.result, two.result) == (1, 2)
    assert one.container_id != two.container_id
    assert two.init_ms is not None


def test_a_warm_cell_has_initialised_the_module_before_its_first_job(pool):
    fn = function("import time\ntime.sleep(0.3)\nREADY = True\ndef main():\n    return READY\n")
    spec = RunSpec(runtime="python", code="", tenant="t-fn", function=fn)
    assert pool.warm(spec) is None
    result, lines = call(pool, fn)
    assert result.status == "succeeded" and result.result is True
    assert result.init_ms is None and result.duration_ms < 300  # the 300 ms sleep was paid before


def test_warming_reports_an_initialisation_error(pool):
    fn = function("raise RuntimeError('nope')\n")
    error = pool.warm(RunSpec(runtime="python", code="", tenant="t-fn", function=fn))
    assert error is not None and error["type"] == "RuntimeError"


NODE_COUNTER = """
let calls = 0;
console.log('initialising');
const os = require('os');
function main(n) {
  calls += 1;
  return { calls, n, pid: process.pid };
}
"""


def test_node_functions_load_the_module_before_the_job_and_share_nothing(pool):
    fn = function(NODE_COUNTER)
    first, first_lines = call(pool, fn, [1], runtime="node")
    assert first.status == "succeeded", first.error
    second, second_lines = call(pool, fn, [2], runtime="node")
    assert second.status == "succeeded", second.error
    assert first.result["calls"] == second.result["calls"] == 1
    assert first.result["pid"] != second.result["pid"]
    assert first_lines == second_lines == ["initialising"]  # each process ran the module once


def test_a_node_initialisation_error_is_the_jobs_error(pool):
    result, _ = call(
        pool, function("throw new TypeError('bad init');\nfunction main() { return 1; }"), runtime="node"
    )
    assert result.status == "failed"
    assert result.error["type"] == "TypeError"
    assert "bad init" in result.error["message"]
