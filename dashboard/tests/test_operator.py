"""The staff-only operator page of worker pools: every tenant's load, linked from the admin's index."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from conftest import TEST_POOL_WORKER
from jobs import pools
from jobs.models import Job

from .pages import signed_in

pytestmark = pytest.mark.django_db

CODE = "def main():\n    return 1\n"


@pytest.fixture(autouse=True)
def only_the_workers_a_test_beats(redis_conn):
    """Live workers here are the heartbeats each test writes: not the suite's stand-in worker of the
    default pool (conftest), which every other test needs for its jobs to be dispatched."""
    pools.gone(worker=TEST_POOL_WORKER, pools=[pools.DEFAULT_POOL])


@pytest.fixture
def operator():
    return signed_in(
        get_user_model().objects.create_user("op@example.com", "op@example.com", "pw", is_staff=True)
    )


def place(persona, pool: str, status: str, **fields) -> Job:
    return Job.objects.create(
        tenant=persona.tenant, runtime="python", code=CODE, timeout_ms=5000, memory_mb=128,
        status=status, pool=pool, home_pool=pool, **fields,
    )  # fmt: skip


def row(page: str, pool: str) -> list[str]:
    """The cells of a pool's row, as text."""
    found = re.search(rf'<tr data-pool="{pool}">(.*?)</tr>', page, re.S)
    assert found, pool
    return [
        " ".join(re.sub(r"<[^>]+>", " ", html.unescape(c)).split())
        for c in re.findall(r"<td[^>]*>(.*?)</td>", found.group(1), re.S)
    ]


def test_it_shows_every_pool_with_every_tenants_jobs(operator, alice, bob):
    pools.beat(worker="host-a.1", pools=["default", "eu"], ttl_s=30)
    pools.beat(worker="host-b.1", pools=["eu"], ttl_s=30)
    place(alice, "eu", "queued")
    place(bob, "eu", "running")
    place(bob, "gpu", "queued")  # a pool nobody serves: its jobs wait
    pools.queue("eu").enqueue("jobs.tasks.run_job", "00000000-0000-0000-0000-000000000000", 1)

    response = operator.get("/app/operator/pools/")
    assert response.status_code == 200
    page = response.content.decode()
    assert row(page, "eu")[:5] == ["eu", "2: host-a.1, host-b.1", "1", "1", "1"]
    assert row(page, "default")[:5] == ["default", "1: host-a.1", "0", "0", "0"]
    assert row(page, "gpu")[:5] == ["gpu", "none its jobs wait", "0", "1", "0"]


@pytest.mark.parametrize("tenant_role", ["owner", "no tenant"])
def test_anyone_but_staff_gets_a_404(alice, tenant_role):
    user = (
        alice.user
        if tenant_role == "owner"
        else get_user_model().objects.create_user("x@example.com", "x@example.com", "pw")
    )
    assert signed_in(user).get("/app/operator/pools/").status_code == 404


def test_signed_out_it_asks_to_sign_in():
    response = Client().get("/app/operator/pools/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_the_admin_index_links_it():
    admin = get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw")
    page = signed_in(admin).get("/admin/").content.decode()
    assert (
        'href="/app/operator/pools/"' in page and "Site administration" in page
    )  # the admin's own index still
