"""Warm-ups are held to a job's rules: admitted (suspension, budget, rate), refused for a disabled
function, bounded however often they are asked for, started by the pools' threads (never holding a
worker), billed (test_builds), and the provisioned cap holds across the fleet."""

from __future__ import annotations

import time

import pytest

from accounts.exceptions import TenantSuspended
from functions.models import Function
from functions.services import warm
from lambdasite.redis_client import get_queue

from .support import call, deploy

pytestmark = pytest.mark.django_db


def _warm(persona, name="adder", count=1):
    return call(persona, "POST", f"/api/v1/functions/{name}/warm", {"count": count})


def _boosts() -> dict:
    return warm.warm_boosts()


def test_a_disabled_function_is_not_warmed(alice):
    deploy(alice)
    Function.objects.filter(name="adder").update(is_disabled=True)
    refused = _warm(alice)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "function_disabled"
    assert _boosts() == {}


def test_a_suspended_tenant_warms_nothing_from_any_edge(alice):
    deploy(alice)
    alice.tenant.is_suspended = True
    alice.tenant.save()
    with pytest.raises(TenantSuspended):  # the service itself refuses (the dashboard calls it)
        warm.warm_request(function=Function.objects.get(name="adder"), count=1)
    assert _boosts() == {}


def test_warm_ups_spend_the_tenants_rate_like_submissions(alice):
    alice.tenant.quota.submissions_per_minute = 3
    alice.tenant.quota.save()
    deploy(alice)
    assert _warm(alice, count=3).status_code == 202
    refused = _warm(alice, count=1)
    assert refused.status_code == 429 and "Retry-After" in refused


def test_warming_again_refreshes_the_target_and_never_amplifies_it(alice, settings):
    settings.FUNCTION_WARM_MAX = 4
    deploy(alice)
    for _ in range(20):
        assert _warm(alice, count=4).status_code == 202
    function = Function.objects.get(name="adder")
    assert _boosts() == {function.pk: 4}
    shares = [
        n for me in ("a", "b", "c") for _, n in warm.provisioned_versions(me=me, workers=["a", "b", "c"])
    ]
    assert sum(shares) == 4  # the fleet keeps 4 cells, not 20 x 4, nor 4 per worker


def test_a_warm_up_is_wanted_for_its_ttl_only(alice, settings):
    deploy(alice)
    assert _warm(alice, count=2).status_code == 202
    later = time.time() + settings.FUNCTION_WARM_TTL_S + 1
    assert warm.warm_boosts(now=later) == {}
    assert warm.provisioned_versions(me="a", workers=["a"]) == []


def test_workers_read_their_targets_again_as_soon_as_a_warm_up_is_asked_for(alice):
    from functions.tasks import ProvisionWatch

    deploy(alice)
    watch = ProvisionWatch()
    watch()  # the first look
    assert watch() is False
    assert _warm(alice).status_code == 202
    assert watch() is True and watch() is False


def test_warm_ups_hold_no_worker(alice):
    deploy(alice)
    assert _warm(alice, count=8).status_code == 202
    assert get_queue().count == 0  # nothing on the job queue: the pools' own threads start the cells


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


def test_warming_a_function_still_building_is_a_409_not_a_404(alice):
    """The function exists (a 404 would say it does not): it has no ready version yet."""
    deploy(alice, requirements="six==1.16.0\n")
    refused = _warm(alice)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "version_not_ready"


def test_a_warm_body_must_be_an_object_or_nothing(alice):
    from functions.tests.support import make_adder

    make_adder(alice.tenant)
    refused = alice.client.post("/api/v1/functions/adder/warm", data="null", content_type="application/json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "validation_error"
