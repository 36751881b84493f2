"""Builds and deploys cannot take the fleet: at most ``max_concurrent_builds`` builds per tenant, a build
never sleeps on a worker waiting for another's layer, deploys are rate limited, versions capped, build
time billed to the tenant, and a suspended tenant deploys nothing from any edge."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.exceptions import TenantSuspended
from accounts.models import UsageCharge
from functions.models import BuildStatus, DependencyLayer, FunctionVersion
from functions.services import builds, deploy
from jobs import billing
from lambdasite.redis_client import build_queue_name, get_queue
from sandbox import layers

from .support import call

pytestmark = pytest.mark.django_db

PY = "def main():\n    return 1\n"


def _deploy(persona, name: str, requirements: str = "six==1.16.0\n"):
    response = call(
        persona,
        "POST",
        "/api/v1/functions",
        {"name": name, "runtime": "python", "code": PY, "requirements": requirements},
    )
    assert response.status_code == 201, response.json()
    return FunctionVersion.objects.get(function__tenant=persona.tenant, function__name=name, number=1)


def _hold_build(version: FunctionVersion, worker: str = "w-other") -> None:
    FunctionVersion.objects.filter(pk=version.pk).update(
        builder=worker, lease_expires_at=timezone.now() + timedelta(seconds=60)
    )


def test_a_tenant_builds_one_version_at_a_time_and_another_tenant_is_not_held_up(alice, bob):
    first, second = _deploy(alice, "one"), _deploy(alice, "two")
    _hold_build(first)  # alice's first build is running on some builder
    assert builds.version_claim(version_id=second.pk, worker="w1") is None
    second.refresh_from_db()
    assert second.builder == "" and second.build_attempts == 0  # given back, no attempt spent
    assert second.lease_expires_at > timezone.now()  # the reconciler re-enqueues it later

    theirs = _deploy(bob, "three")
    claimed = builds.version_claim(version_id=theirs.pk, worker="w1")
    assert claimed is not None and claimed.builder == "w1"

    # once alice's build ends, her waiting build is claimable
    FunctionVersion.objects.filter(pk=first.pk).update(
        status=BuildStatus.FAILED, builder="", lease_expires_at=None
    )
    assert builds.version_claim(version_id=second.pk, worker="w1") is not None


def test_a_raised_build_cap_lets_a_tenant_run_more(alice):
    alice.tenant.quota.max_concurrent_builds = 2
    alice.tenant.quota.save()
    first, second = _deploy(alice, "one"), _deploy(alice, "two")
    _hold_build(first)
    assert builds.version_claim(version_id=second.pk, worker="w1") is not None


def test_a_build_whose_layer_another_build_installs_is_given_back_without_sleeping(alice, monkeypatch):
    version = _deploy(alice, "one")
    lock = "six==1.16.0 --hash=sha256:x\n"
    DependencyLayer.objects.create(
        digest=layers.lock_digest("python", lock),
        runtime="python",
        lock=lock,
        status=BuildStatus.BUILDING,
        builder="w-other",
        lease_expires_at=timezone.now() + timedelta(seconds=60),
    )
    monkeypatch.setattr(layers, "resolve", lambda *a, **k: layers.Resolved(lock=lock, packages=1))
    started = time.monotonic()
    builds.version_build(version_id=version.pk, worker="w1", client=object())
    assert time.monotonic() - started < 2  # it used to sleep here for up to BUILD_TIMEOUT_S
    version.refresh_from_db()
    assert version.status == BuildStatus.BUILDING and version.builder == "" and version.build_attempts == 0
    assert "build capacity" in "".join(version.build_log.values_list("text", flat=True))
    # and it is not enqueued again at once (it would resolve again and again while the layer installs):
    # the reconciler runs it once BUILD_DEFER_S has passed
    assert get_queue(build_queue_name()).count == 0
    assert version.lease_expires_at > timezone.now()


def test_build_time_is_billed_to_the_tenant(alice, monkeypatch, settings):
    settings.BUILD_MEMORY_MB = 1024
    version = _deploy(alice, "one")

    now = [1000.0]

    def slow_failure(*args, **kwargs):
        now[0] += 2.5  # the resolver ran 2.5 s, by the build's clock
        raise layers.BuildFailed("no such package")

    monkeypatch.setattr(layers, "resolve", slow_failure)
    before = billing.gb_seconds_used(tenant=alice.tenant, since=billing.billing_period()[0])
    builds.version_build(version_id=version.pk, worker="w1", client=object(), clock=lambda: now[0])
    charge = UsageCharge.objects.get(tenant=alice.tenant, kind=UsageCharge.Kind.BUILD)
    assert charge.gb_seconds == pytest.approx(2.5)  # 1 GB x 2.5 s
    after = billing.gb_seconds_used(tenant=alice.tenant, since=billing.billing_period()[0])
    assert after - before == pytest.approx(charge.gb_seconds)


def test_deploys_are_rate_limited_per_tenant(alice, bob):
    alice.tenant.quota.deploys_per_minute = 2
    alice.tenant.quota.save()
    for name in ("one", "two"):
        _deploy(alice, name, requirements="")
    refused = call(alice, "POST", "/api/v1/functions", {"name": "three", "runtime": "python", "code": PY})
    assert refused.status_code == 429, refused.json()
    assert refused.json()["error"]["code"] == "deploy_rate_limited" and int(refused["Retry-After"]) >= 1
    refused = call(alice, "POST", "/api/v1/functions/one/versions", {"code": PY})
    assert refused.status_code == 429
    _deploy(bob, "one", requirements="")  # another tenant's bucket


def test_a_function_has_at_most_its_quota_of_versions(alice):
    alice.tenant.quota.max_versions_per_function = 2
    alice.tenant.quota.save()
    _deploy(alice, "one", requirements="")
    assert call(alice, "POST", "/api/v1/functions/one/versions", {"code": PY}).status_code == 201
    refused = call(alice, "POST", "/api/v1/functions/one/versions", {"code": PY})
    assert refused.status_code == 403, refused.json()
    assert refused.json()["error"]["code"] == "quota_exceeded" and "Retry-After" not in refused
    assert FunctionVersion.objects.filter(function__name="one").count() == 2


def test_a_suspended_tenant_deploys_nothing_from_any_edge(alice):
    _deploy(alice, "one", requirements="")
    alice.tenant.is_suspended = True
    alice.tenant.save()
    function = alice.tenant.functions.get(name="one")
    with pytest.raises(TenantSuspended):
        deploy.version_create(function=function, user=alice.user, spec=deploy.VersionSpec(code=PY))
    with pytest.raises(TenantSuspended):
        deploy.function_create(
            tenant=alice.tenant,
            user=alice.user,
            name="two",
            runtime="python",
            spec=deploy.VersionSpec(code=PY),
        )
    assert FunctionVersion.objects.filter(function__tenant=alice.tenant).count() == 1


def test_a_suspended_tenant_moves_no_alias_and_changes_no_warm_pool(alice):
    from functions.services import aliases

    _deploy(alice, "one", requirements="")
    function = alice.tenant.functions.get(name="one")
    alice.tenant.is_suspended = True
    alice.tenant.save()
    with pytest.raises(TenantSuspended):
        aliases.alias_set(function=function, name="prod", version=1)
    with pytest.raises(TenantSuspended):
        deploy.function_update(function=function, provisioned=1)
    assert not function.aliases.exists()
    function.refresh_from_db()
    assert function.provisioned == 0


def test_a_suspended_tenant_creates_or_resumes_no_schedule_and_no_endpoint_but_may_pause(alice, settings):
    from schedules.services.manage import ScheduleSpec, schedule_create, schedule_update
    from webhooks.services.endpoints import endpoint_create, endpoint_update

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    _deploy(alice, "one", requirements="")
    spec = ScheduleSpec(cron="0 * * * *", function="one", args=[])
    schedule = schedule_create(tenant=alice.tenant, name="hourly", spec=spec)
    endpoint = endpoint_create(tenant=alice.tenant, url="http://127.0.0.1:9/hook", events=["job.failed"])
    alice.tenant.is_suspended = True
    alice.tenant.save()
    with pytest.raises(TenantSuspended):
        schedule_create(tenant=alice.tenant, name="other", spec=spec)
    with pytest.raises(TenantSuspended):
        endpoint_create(tenant=alice.tenant, url="http://127.0.0.1:9/other", events=["job.failed"])
    assert not schedule_update(schedule=schedule, spec=ScheduleSpec(enabled=False)).enabled  # pausing is fine
    with pytest.raises(TenantSuspended):
        schedule_update(schedule=schedule, spec=ScheduleSpec(enabled=True))
    assert not endpoint_update(endpoint=endpoint, enabled=False).enabled
    with pytest.raises(TenantSuspended):
        endpoint_update(endpoint=endpoint, enabled=True)
