"""The egress proxy's monthly budget hook in a worker (jobs/egress_budget.py): the tenant's quota less
this month's attempts' egress bytes, read once per EGRESS_BUDGET_CACHE_S, and bounding the attempt a
door is bound to. PostgreSQL, no Docker."""

from __future__ import annotations

import tempfile
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import billing, egress_budget, execution
from jobs.models import Attempt
from sandbox import Egress
from sandbox.egress import EgressProxy

from .test_connections import conn, run_attempt, submit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_readings():
    egress_budget._left.clear()
    execution._tenants.clear()
    yield
    egress_budget._left.clear()
    execution._tenants.clear()


def moved(persona, sent: int, received: int = 0, *, started_at=None) -> None:
    job = run_attempt(submit(persona), conn(sent=sent, received=received))
    if started_at is not None:
        Attempt.objects.filter(job=job).update(started_at=started_at)


def test_what_is_left_is_the_quota_less_this_months_egress_of_this_tenant_only(alice, bob):
    quota = alice.tenant.quota
    quota.max_egress_bytes_month = 10_000
    quota.save()
    assert egress_budget.egress_bytes_left(alice.tenant.id) == 10_000
    moved(alice, 1_000, 2_000)
    moved(alice, 500)
    moved(alice, 4_000, started_at=billing.billing_period()[0] - timedelta(seconds=1))  # last month
    moved(bob, 9_000)
    run_attempt(submit(alice))  # a job without egress
    assert egress_budget.egress_bytes_left(alice.tenant.id) == 10_000 - 3_500
    assert billing.egress_bytes_used(tenant_id=bob.tenant.id, since=billing.billing_period()[0]) == 9_000


def test_a_spent_budget_leaves_nothing_and_an_unlimited_one_none(alice):
    quota = alice.tenant.quota
    quota.max_egress_bytes_month = 100
    quota.save()
    moved(alice, 150)
    assert egress_budget.egress_bytes_left(alice.tenant.id) == 0
    quota.max_egress_bytes_month = None
    quota.save()
    execution._tenants.clear()
    assert egress_budget.egress_bytes_left(alice.tenant.id) is None


def test_the_hook_reads_once_per_cache_period(alice, settings):
    settings.EGRESS_BUDGET_CACHE_S = 5.0
    now = [1000.0]
    egress_budget._left.clock = lambda: now[0]
    try:
        tenant = str(alice.tenant.id)
        with CaptureQueriesContext(connection) as first:
            assert egress_budget.budget(tenant, "job-1", 1) == 10 << 30
        moved(alice, 7_000)
        with CaptureQueriesContext(connection) as cached:
            assert egress_budget.budget(tenant, "job-2", 1) == 10 << 30  # at most 5 s stale
        now[0] += 5.0
        execution._tenants.clear()
        assert egress_budget.budget(tenant, "job-3", 1) == (10 << 30) - 7_000
    finally:
        egress_budget._left.clock = __import__("time").monotonic
    assert len(first) == 2 and len(cached) == 0  # the tenant and its quota, then the sum; then nothing


def test_a_door_bound_to_an_attempt_may_move_only_what_the_budget_leaves(alice):
    quota = alice.tenant.quota
    quota.max_egress_bytes_month = 50_000
    quota.save()
    moved(alice, 20_000)
    directory = tempfile.mkdtemp(prefix="ls-budget-")
    proxy = EgressProxy(directory=directory, budget=egress_budget.budget, max_bytes=1 << 20)
    try:
        door = proxy.open_door("cell-budget")
        binding = proxy.bind(door, tenant=str(alice.tenant.id), job="j", attempt=1, egress=Egress("public"))
        assert (binding.max_bytes, binding.cap_reason()) == (30_000, "monthly egress budget")
        proxy.unbind(door)
        quota.max_egress_bytes_month = None
        quota.save()
        egress_budget._left.clear()
        execution._tenants.clear()
        binding = proxy.bind(door, tenant=str(alice.tenant.id), job="j", attempt=2, egress=Egress("public"))
        assert (binding.max_bytes, binding.cap_reason()) == (1 << 20, "byte cap")
    finally:
        proxy.close()
