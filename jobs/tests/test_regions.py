"""Worker pools as two regions (issue 28), on the partition test's harness: the "eu" pool's worker
runs on a far "host" — a network namespace whose link to PostgreSQL and Redis adds 30 ms each way —
and the default pool's worker beside the database. A job placed in eu runs on the eu worker and
nowhere else, and its queue wait, which pays the far link, is what GET /api/v1/pools reports for the
pool. The link's addresses are in 198.18.0.0/15 (benchmarking): nothing else is ever reached."""

from __future__ import annotations

import os
import secrets
import statistics

import pytest
from django.conf import settings

from jobs import pools
from jobs.models import Attempt, Job
from jobs.tests.test_chaos import Stack, terminal_count, wait_until
from jobs.tests.test_partition import Forwarder, Host, _start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

DELAY_S = 0.030  # each way, between the eu worker and PostgreSQL and Redis
QUICK = {"runtime": "python", "code": "def main(i):\n    return i\n"}


@pytest.fixture
def stack():
    s = Stack(settings.REDIS_URL)
    yield s
    s.stop()


@pytest.fixture
def far_host():
    if os.geteuid() != 0:
        pytest.fail("the regions test needs root to make a network namespace")
    forwarder = Forwarder()
    host = None
    try:
        host = Host(secrets.token_hex(2), 1, net=f"198.18.{secrets.randbelow(250) + 1}")
        yield host, forwarder
    finally:
        forwarder.close()
        if host is not None:
            host.remove()


def test_a_job_placed_in_the_far_pool_runs_there_and_its_wait_is_measured(alice, stack, far_host):
    host, forwarder = far_host
    stack.start("reconciler", "scheduler")
    near = stack.start("worker-default", "worker", "--pools", "default")
    far = _start_worker(stack, host, forwarder, "worker-eu", "--pools", "eu", delay_s=DELAY_S)
    assert wait_until(lambda: {"default", "eu"} <= set(pools.live_workers()), 60), stack.report()
    # the eu worker's first job: its start-up and the tenant's first cell are not the link's cost
    warm_up = alice.post_job({**QUICK, "args": [0], "pool": "eu"}).json()["id"]
    assert wait_until(lambda: terminal_count([warm_up]) == 1, 90), stack.report()

    far_answer = alice.post_job({**QUICK, "args": [1], "pool": "eu"})
    near_answer = alice.post_job({**QUICK, "args": [2]})
    assert (far_answer.status_code, near_answer.status_code) == (202, 202), far_answer.content
    ids = [far_answer.json()["id"], near_answer.json()["id"]]
    assert wait_until(lambda: terminal_count(ids) == 2, 90), stack.report()

    far_job, near_job = Job.objects.get(pk=ids[0]), Job.objects.get(pk=ids[1])
    assert (far_job.status, far_job.result, far_job.pool, far_job.placed_by) == ("succeeded", 1, "eu", "home")
    assert (near_job.status, near_job.result, near_job.pool) == ("succeeded", 2, "default")
    ran_on = {a.job_id: a.worker for a in Attempt.objects.filter(job_id__in=ids)}
    assert ran_on[far_job.id].endswith(f":{far.pid}") and ran_on[near_job.id].endswith(f":{near.pid}")
    # the eu worker heard of the job over its link: it cannot have started sooner than one trip
    assert far_job.queue_wait_ms >= DELAY_S * 1000, far_job.queue_wait_ms
    # and the tenant sees the pool's waits: its two jobs that started there
    seen = {p["name"]: p for p in alice.client.get("/api/v1/pools").json()["pools"]}
    waits = [Job.objects.get(pk=warm_up).queue_wait_ms, far_job.queue_wait_ms]
    assert seen["eu"]["workers"] == 1
    assert seen["eu"]["wait_ms"]["p50"] == pytest.approx(statistics.median(waits), abs=0.001)
    print(
        f"\nregions: queue wait {far_job.queue_wait_ms:.1f} ms in eu ({DELAY_S * 1000:.0f} ms each way to "
        f"PostgreSQL and Redis), {near_job.queue_wait_ms:.1f} ms in default (beside them); the eu worker's "
        f"first job waited {waits[0]:.1f} ms"
    )
