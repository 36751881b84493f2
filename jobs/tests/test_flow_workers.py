"""Flow control with real workers (processes), Docker and the reconciler: a function's ceiling
holds while several workers are free, and a key's flood does not hold another key's job back.
(The many cases of the fill are in test_flow.py, at the database.)"""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from functions.services.deploy import VersionSpec, function_create
from functions.services.flow import FlowSettings
from functions.services.invoke import function_invoke
from jobs.models import Attempt, Job
from jobs.tests.test_chaos import Stack, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

SLEEP = "import time\ndef main(key, seconds):\n    time.sleep(seconds)\n    return key\n"


@pytest.fixture
def stack():
    s = Stack(settings.REDIS_URL)
    s.start("reconciler", "scheduler")
    for name in ("a", "b", "c"):
        s.start(f"worker-{name}", "worker")
    yield s
    s.stop()


def setup(persona, concurrency: int, **flow):
    quota = persona.tenant.quota
    quota.max_concurrency, quota.submissions_per_minute = concurrency, 100_000
    quota.save()
    function_create(
        tenant=persona.tenant,
        user=None,
        name="f",
        runtime="python",
        spec=VersionSpec(code=SLEEP, timeout_ms=30_000),
        flow=FlowSettings().changed(**flow),
    )


def invoke(persona, key: str, seconds: float) -> Job:
    return function_invoke(tenant=persona.tenant, api_key=None, name="f", args=[key, seconds])[0]


def test_max_concurrency_one_never_runs_two_with_three_workers(alice, stack):
    setup(alice, 10, max_concurrency=1)
    ids = [invoke(alice, str(n), 0.4).id for n in range(6)]
    peak = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        peak = max(peak, Job.objects.filter(pk__in=ids, status="running").count())
        if Job.objects.filter(pk__in=ids, status="succeeded").count() == len(ids):
            break
        time.sleep(0.02)
    assert Job.objects.filter(pk__in=ids, status="succeeded").count() == len(ids), stack.report()
    assert peak == 1
    # the attempts' own intervals, as the workers recorded them, never overlap
    spans = sorted(Attempt.objects.filter(job_id__in=ids).values_list("started_at", "finished_at"))
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:], strict=False))


def test_a_keys_flood_does_not_delay_another_keys_job_beyond_one_turnover(alice, stack):
    setup(alice, 2, concurrency_key="$[0]", concurrency_per_key=2)
    flood = [invoke(alice, "a", 0.5).id for _ in range(200)]
    assert wait_until(lambda: Job.objects.filter(pk__in=flood, status="succeeded").count() >= 2, timeout=60)
    other = invoke(alice, "b", 0)
    started = wait_until(lambda: Job.objects.get(pk=other.id).started_at, timeout=30, step=0.02)
    assert started is not None, stack.report()
    job = Job.objects.get(pk=other.id)
    waited = (job.started_at - job.created_at).total_seconds()
    behind = Job.objects.filter(pk__in=flood, status="queued").count()
    # one of a's two slots turned over (a 0.5 s job) and went to b, not to a's ~190 waiting jobs
    assert waited < 0.5 + 1.5, waited
    assert behind > 150
