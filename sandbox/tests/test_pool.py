"""The cell pool against the real engine: streaming, spares, reaping, orphans, verdict edges."""

from __future__ import annotations

import os
import time

import docker
import pytest

import sandbox
from sandbox import Limits, RunSpec
from sandbox.cell import LABEL
from sandbox.sweep import own_container_id, owner_labels, sweep_orphans

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_lines_arrive_while_the_job_runs(sandbox_pool, runtime):
    code = {
        "python": "import time\ndef main():\n    for i in range(4):\n        print('tick', i)\n    "
        "    time.sleep(0.3)\n    return 'ok'\n",
        "node": "async function main() {\n  for (let i = 0; i < 4; i++) {\n    console.log('tick', i);\n"
        "    await new Promise(r => setTimeout(r, 300));\n  }\n  return 'ok';\n}\n",
    }[runtime]
    arrivals = []

    def on_output(lines):
        arrivals.extend((time.monotonic(), line) for line in lines)

    t0 = time.monotonic()
    result = sandbox_pool.run(RunSpec(runtime=runtime, code=code, tenant="stream"), on_output)
    assert result.status == "succeeded"
    assert [line.text for _, line in arrivals] == [f"tick {i}" for i in range(4)]
    assert [line.seq for _, line in arrivals] == [1, 2, 3, 4]
    gaps = [b - a for (a, _), (b, _) in zip(arrivals, arrivals[1:], strict=False)]
    assert all(gap > 0.2 for gap in gaps), gaps  # one by one as printed, not all at the end
    assert arrivals[0][0] - t0 < 0.9 * (result.duration_ms / 1000)


def test_a_spare_serves_a_new_tenants_first_job_without_a_container_start(docker_client):
    limits = Limits()
    pool = sandbox.Sandbox(reuse="tenant", spare_profiles=(("python", limits),), spares_per_profile=1)
    try:
        pool.maintain()
        assert pool.stats()["spares"] == 1
        result = pool.run(
            RunSpec(runtime="python", code="def main():\n    return 7\n", tenant="brand-new", limits=limits)
        )
        assert result.status == "succeeded" and result.result == 7
        assert result.start_ms < 50, result.start_ms  # no ~350 ms container start on the path
        assert pool.stats()["spares"] == 0
        pool.maintain()
        assert pool.stats()["spares"] == 1  # refilled in the background
    finally:
        pool.close()


def test_idle_cells_are_removed_after_the_ttl(docker_client):
    pool = sandbox.Sandbox(reuse="tenant", idle_ttl_s=0.2)
    try:
        result = pool.run(RunSpec(runtime="python", code="def main():\n    return 1\n", tenant="ttl"))
        assert pool.stats()["idle_cells"] == 1
        time.sleep(0.3)
        pool.maintain()
        assert pool.stats()["idle_cells"] == 0
        pool.flush()
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(result.container_id)
    finally:
        pool.close()


def test_a_cell_that_hit_its_memory_limit_is_destroyed_not_reused(docker_client):
    pool = sandbox.Sandbox(reuse="tenant")
    try:
        bomb = "def main():\n    x = []\n    while True:\n        x.append(b'x' * (8 << 20))\n"
        killed = pool.run(RunSpec(runtime="python", code=bomb, tenant="oom", limits=Limits(memory_mb=64)))
        assert killed.status == "killed" and killed.error["type"] == "MemoryLimitExceeded"
        pool.flush()
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(killed.container_id)
        after = pool.run(
            RunSpec(
                runtime="python",
                code="def main():\n    return 'fresh'\n",
                tenant="oom",
                limits=Limits(memory_mb=64),
            )
        )
        assert after.result == "fresh" and after.container_id != killed.container_id
    finally:
        pool.close()


def test_a_result_over_its_cap_fails_the_job_clearly(sandbox_pool):
    code = "def main():\n    return 'x' * 5000\n"
    result = sandbox_pool.run(
        RunSpec(runtime="python", code=code, tenant="bigresult", limits=Limits(max_result_bytes=1000))
    )
    assert result.status == "failed"
    assert result.error["type"] == "ResultTooLarge" and "1000-byte limit" in result.error["message"]


def test_orphans_of_dead_workers_are_swept_and_live_ones_kept(docker_client, sandbox_pool):
    from sandbox.cell import Cell
    from sandbox.images import image_tag

    dead = {**owner_labels(), "lambdasite.pid": "999999", "lambdasite.boot": "1"}
    orphan = Cell(docker_client, "python", image_tag("python"), Limits(), dead).start()
    live = sandbox_pool.run(RunSpec(runtime="python", code="def main():\n    return 1\n", tenant="sweep"))
    removed = sweep_orphans(docker_client)
    assert orphan.id in removed
    assert live.container_id not in removed
    docker_client.containers.get(live.container_id)  # still there


def test_cells_of_a_worker_container_are_swept_once_that_container_stops(docker_client, sandbox_pool):
    """A worker in a container (compose) labels its cells with that container; a worker on another
    host name sweeps them when the container no longer runs, and never while it runs."""
    from sandbox.cell import Cell
    from sandbox.images import image_tag

    stand_in = docker_client.containers.run(
        image_tag("python"),
        ["-c", "import time; time.sleep(120)"],
        entrypoint=["python3"],
        detach=True,
        network_mode="none",
        labels={"lambdasite.test": "owner"},
    )
    cells = []
    try:
        labels = {
            **owner_labels(),
            "lambdasite.host": "a-worker-container",
            "lambdasite.owner-container": stand_in.id,
        }
        cells.append(Cell(docker_client, "python", image_tag("python"), Limits(), labels).start())
        gone = {**labels, "lambdasite.owner-container": "f" * 64}  # its container was removed
        cells.append(Cell(docker_client, "python", image_tag("python"), Limits(), gone).start())
        removed = sweep_orphans(docker_client)
        assert cells[1].id in removed
        assert cells[0].id not in removed
        docker_client.containers.get(cells[0].id)  # its owner runs: kept
        stand_in.kill()
        assert cells[0].id in sweep_orphans(docker_client)
    finally:
        stand_in.remove(force=True)
        for cell in cells:
            try:
                docker_client.containers.get(cell.id).remove(force=True)
            except docker.errors.NotFound:
                pass


def test_a_container_reads_its_own_id_from_its_mount_table(tmp_path):
    cid = "0123456789abcdef" * 4
    table = tmp_path / "mountinfo"
    table.write_text(
        "612 590 0:52 / / rw,relatime master:1 - overlay overlay rw\n"
        f"640 612 8:1 /var/lib/docker/containers/{cid}/hostname /etc/hostname rw,relatime"
        " - ext4 /dev/sda1 rw\n"
    )
    assert own_container_id(str(table)) == cid
    table.write_text("25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n")
    assert own_container_id(str(table)) == ""
    assert "lambdasite.owner-container" not in owner_labels()  # this test process is on the host


def test_an_unreachable_engine_is_an_internal_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    pool = sandbox.Sandbox(reuse="never")
    with pytest.raises(sandbox.SandboxError) as info:
        pool.run(RunSpec(runtime="python", code="def main():\n    return 1\n", tenant="x"))
    assert info.value.code == "engine_unavailable"


def test_containers_carry_labels_naming_their_owner(docker_client, sandbox_pool):
    result = sandbox_pool.run(RunSpec(runtime="python", code="def main():\n    return 1\n", tenant="labels"))
    labels = docker_client.containers.get(result.container_id).labels
    assert labels[LABEL] == "1" and labels["lambdasite.pid"] == str(os.getpid())
    assert labels["lambdasite.pool"] == sandbox_pool.pool_id


def test_eviction_works_after_a_tenants_cells_were_all_taken(docker_client):
    """A tenant whose only idle cell was taken must not leave an empty entry behind: eviction
    (more idle cells than the cap) once failed on it with min() of an empty sequence."""
    pool = sandbox.Sandbox(reuse="tenant", max_idle_cells=1)
    try:
        code = "def main():\n    return 1\n"
        for tenant in ("evict-a", "evict-a", "evict-b", "evict-c"):
            assert pool.run(RunSpec(runtime="python", code=code, tenant=tenant)).status == "succeeded"
        assert pool.stats()["idle_cells"] == 1
    finally:
        pool.close()
