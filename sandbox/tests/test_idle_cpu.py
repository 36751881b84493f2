"""Tenant code that runs between jobs is caught: a module whose top-level code keeps a CPU busy (a Node
worker thread; Python's zygote already refuses a module that leaves a thread or a process running)
gets its idle cell retired and its CPU reported for billing, while a quiet cell stays warm."""

from __future__ import annotations

import itertools
import time

import pytest

from sandbox import Limits, RunSpec, Sandbox, cgroups  # noqa: F401
from sandbox.spec import FunctionRef

pytestmark = pytest.mark.docker

_keys = itertools.count()

NODE_BURNER = """
const { Worker } = require('worker_threads');
new Worker('for(;;){}', { eval: true });
function main() { return 'ok'; }
"""
QUIET = {"node": "function main() { return 'ok'; }\n", "python": "def main():\n    return 'ok'\n"}


@pytest.fixture
def pool(docker_client):
    reports = []
    pool = Sandbox(
        client=docker_client, idle_cpu_max_ms=300, on_idle_cpu=lambda *report: reports.append(report)
    )
    pool.reports = reports
    yield pool
    pool.close()


def _run(pool, runtime: str, code: str):
    fn = FunctionRef(key=f"idle-{next(_keys)}", code=code, handler="main")
    spec = RunSpec(
        runtime=runtime, code="", args=[], tenant="t-idle", function=fn, limits=Limits(timeout_ms=3000)
    )
    result = pool.run(spec)
    return result


def _idle_cells(pool) -> int:
    return pool.stats()["idle_cells"]


def test_the_cell_counter_is_readable_here(docker_client, pool):
    result = _run(pool, "python", QUIET["python"])
    assert result.status == "succeeded", result.error
    assert cgroups.cpu_ns(result.container_id) is not None, "no cgroup CPU counter found for a cell"


def test_a_cell_that_burns_cpu_while_idle_is_retired_and_reported(pool):
    result = _run(pool, "node", NODE_BURNER)
    assert _idle_cells(pool) == 1
    deadline = time.monotonic() + 10
    while _idle_cells(pool) and time.monotonic() < deadline:
        time.sleep(0.3)
        pool.maintain()
    assert _idle_cells(pool) == 0, "the burning cell was kept warm"
    [(tenant, cpu_ms, memory_mb)] = pool.reports
    assert tenant == "t-idle" and cpu_ms > 300 and memory_mb == 128
    assert result.status == "succeeded", result.error


@pytest.mark.parametrize("runtime", ["node", "python"])
def test_a_quiet_cell_stays_warm(pool, runtime):
    result = _run(pool, runtime, QUIET[runtime])
    assert result.status == "succeeded", result.error
    for _ in range(4):
        time.sleep(0.3)
        pool.maintain()
    assert _idle_cells(pool) == 1 and pool.reports == []
