"""Warm-ups are held to a job's rules: admitted (suspension, budget, rate), refused for a disabled
function, bounded in number, queued behind jobs, and the provisioned cap holds across the fleet."""

from __future__ import annotations

import pytest

from accounts.exceptions import TenantSuspended
from functions.models import Function
from functions.services import warm
from lambdasite.redis_client import get_queue

from .support import call, deploy

pytestmark = pytest.mark.django_db


def _warm(persona, name="adder", count=1):
    return call(persona, "POST", f"/api/v1/functions/{name}/warm", {"count": count})


def _warm_jobs() -> list[str]:
    return [job.func_name for job in get_queue().jobs if job.func_name == "functions.tasks.warm_version"]


def test_a_disabled_function_is_not_warmed(alice):
    deploy(alice)
    Function.objects.filter(name="adder").update(is_disabled=True)
    refused = _warm(alice)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "function_disabled"
    assert _warm_jobs() == []


def test_a_suspended_tenant_warms_nothing_from_any_edge(alice):
    deploy(alice)
    alice.tenant.is_suspended = True
    alice.tenant.save()
    with pytest.raises(TenantSuspended):  # the service itself refuses (the dashboard calls it)
        warm.warm_request(function=Function.objects.get(name="adder"), count=1)
    assert _warm_jobs() == []


def test_warm_ups_spend_the_tenants_rate_like_submissions(alice):
    alice.tenant.quota.submissions_per_minute = 3
    alice.tenant.quota.save()
    deploy(alice)
    assert _warm(alice, count=3).status_code == 202
    refused = _warm(alice, count=1)
    assert refused.status_code == 429 and "Retry-After" in refused
    assert len(_warm_jobs()) == 3


def test_at_most_warm_max_warm_ups_of_a_function_wait(alice, settings):
    deploy(alice)
    assert _warm(alice, count=settings.FUNCTION_WARM_MAX).status_code == 202
    refused = _warm(alice, count=1)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "warm_pending"
    assert len(_warm_jobs()) == settings.FUNCTION_WARM_MAX
    warm.warm_taken(Function.objects.get(name="adder").pk)  # a worker took one
    assert _warm(alice, count=1).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_warm_ups_queue_behind_jobs(alice):
    deploy(alice)
    assert (
        call(alice, "POST", "/api/v1/jobs", {"runtime": "python", "code": "def main(): pass"}).status_code
        == 202
    )
    assert _warm(alice).status_code == 202
    funcs = [job.func_name for job in get_queue().jobs]
    assert funcs[-1] == "functions.tasks.warm_version" and len(funcs) == 2


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 7])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_the_provisioned_shares_of_the_live_workers_add_up_to_the_cap(n, count):
    workers = [f"w{i}" for i in range(count)]
    for salt in range(5):
        shares = [warm.provisioned_share(n, workers=workers, me=me, salt=salt) for me in workers]
        assert sum(shares) == n and max(shares) - min(shares) <= 1
    assert warm.provisioned_share(n, workers=workers, me="not-live-yet", salt=0) == 0


def test_provisioned_versions_gives_each_live_worker_its_share(alice):
    deploy(alice, provisioned=3)
    shares = [sum(n for _, n in warm.provisioned_versions(me=me, workers=["a", "b"])) for me in ("a", "b")]
    assert sorted(shares) == [1, 2]  # was ceil(3 / 2) = 2 each: 4 cells for a cap of 3
