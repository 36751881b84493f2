"""The overflow pass (jobs.services.overflow) with an injected clock: not before after_wait_s, after it
to the first listed pool with room, never to an unlisted pool, and never a job a worker already
popped (the LREM race); a stranded job (its pool has no live worker) moves too."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs import metrics, pools
from jobs.models import Job, Status
from jobs.services import reconcile
from jobs.services.overflow import overflow_pass
from jobs.tests.support import QUICK
from lambdasite.redis_client import get_queue

pytestmark = pytest.mark.django_db(transaction=True)

SPILL = {"pool": "default", "overflow": ["full", "burst"], "after_wait_s": 2}


def worker(name: str, pools_served: list[str], *, slots: int, busy: int = 0) -> None:
    """A live job worker serving these pools, with ``slots`` job slots, ``busy`` of them taken."""
    pools.beat(worker=name, pools=pools_served, ttl_s=60)
    metrics.publish_pool(name, {"inflight": busy, "max_inflight": slots, "pools": pools_served}, ttl_s=60)
    pools.forget_live()


@pytest.fixture
def fleet():
    """default: saturated (the test default worker offers no slots); full: live, no room;
    burst: live, 4 free slots; other: live with room, but no job lists it."""
    worker("w-full", ["full"], slots=2, busy=2)
    worker("w-burst", ["burst"], slots=4)
    worker("w-other", ["other"], slots=8)


def in_queue(pool: str) -> list[str]:
    return [rq_id.rsplit("-", 1)[0] for rq_id in pools.queue(pool).get_job_ids()]


def dispatched(persona, placement=SPILL) -> Job:
    job_id = persona.post_job({**QUICK, "placement": placement}).json()["id"]
    job = Job.objects.get(pk=job_id)
    assert job.status == Status.DISPATCHED and in_queue("default")[-1] == job_id
    return job


def test_a_saturated_home_overflows_after_the_wait_and_not_before(alice, fleet):
    job = dispatched(alice)
    early = overflow_pass(now=job.dispatched_at + timedelta(seconds=1.9))
    assert early["overflowed"] == 0 and Job.objects.get(pk=job.id).pool == "default"
    at = job.dispatched_at + timedelta(seconds=2.34)
    moved = overflow_pass(now=at)
    assert moved["overflowed"] == 1
    job.refresh_from_db()
    assert job.dispatched_at == at  # dispatched anew: the lost-dispatch check counts from the move
    # "full" is listed first but has no room: the first listed pool with room
    assert (job.pool, job.home_pool, job.placed_by) == ("burst", "default", "overflow after 2.3 s wait")
    assert job.status == Status.DISPATCHED
    assert in_queue("burst") == [str(job.id)] and in_queue("default") == []
    body = alice.client.get(f"/api/v1/jobs/{job.id}").json()
    assert (body["pool"], body["placed_by"]) == ("burst", "overflow after 2.3 s wait")
    assert body["placement"] == {"pool": "default", "overflow": ["full", "burst"], "after_wait_s": 2.0}


def test_it_never_overflows_to_a_pool_not_listed(alice, fleet):
    job = dispatched(alice, {"pool": "default", "overflow": ["full", "gone"], "after_wait_s": 1})
    assert overflow_pass(now=job.dispatched_at + timedelta(seconds=60))["overflowed"] == 0
    assert Job.objects.get(pk=job.id).pool == "default" and in_queue("default") == [str(job.id)]
    assert in_queue("other") == [] and in_queue("burst") == []


def test_a_job_a_worker_already_popped_is_not_moved(alice, fleet):
    job = dispatched(alice)
    get_redis_queue = get_queue()
    assert get_redis_queue.connection.lpop(get_redis_queue.key)  # a worker took it, not yet claimed
    assert overflow_pass(now=job.dispatched_at + timedelta(seconds=5))["overflowed"] == 0
    job.refresh_from_db()
    assert (job.pool, job.placed_by) == ("default", "home") and in_queue("burst") == []


def test_room_is_used_up_as_jobs_move(alice, fleet):
    worker("w-burst", ["burst"], slots=4, busy=2)  # two free slots
    pools.queue("burst").connection.rpush(pools.queue("burst").key, "someone-elses-1")  # one taken
    jobs = [dispatched(alice) for _ in range(3)]
    later = max(job.dispatched_at for job in jobs) + timedelta(seconds=3)
    assert overflow_pass(now=later)["overflowed"] == 1
    assert Job.objects.filter(pool="burst").count() == 1 and len(in_queue("default")) == 2


def test_a_cancelled_job_is_not_enqueued_again(alice, fleet):
    job = dispatched(alice)
    Job.objects.filter(pk=job.id).update(status=Status.CANCELLED)
    assert overflow_pass(now=job.dispatched_at + timedelta(seconds=5))["overflowed"] == 0
    assert in_queue("burst") == []


def test_a_stranded_job_moves_after_its_wait_and_home_again_when_home_returns(alice, fleet):
    placed = {"pool": "eu", "overflow": ["burst"], "after_wait_s": 2}
    job_id = alice.post_job({**QUICK, "placement": placed}).json()["id"]
    job = Job.objects.get(pk=job_id)
    assert job.status == Status.QUEUED  # no live eu worker
    assert reconcile.reconcile(now=job.next_attempt_at + timedelta(seconds=1.5))["replaced"] == 0
    assert Job.objects.get(pk=job_id).status == Status.QUEUED
    counts = reconcile.reconcile(now=job.next_attempt_at + timedelta(seconds=2.5))
    assert counts["replaced"] == 1  # given the burst pool, then dispatched by the same tick's fill
    job.refresh_from_db()
    assert (job.status, job.pool, job.placed_by) == (Status.DISPATCHED, "burst", "overflow after 2.5 s wait")
    assert in_queue("burst") == [job_id]
    # a stranded job waiting in an overflow pool that died goes home once home is back
    Job.objects.filter(pk=job_id).update(status=Status.QUEUED, pool="gone")
    worker("w-eu", ["eu"], slots=1)
    overflow_pass(now=job.next_attempt_at + timedelta(seconds=10))
    job.refresh_from_db()
    assert (job.pool, job.placed_by) == ("eu", "")


def test_a_job_without_overflow_stays_where_it_is(alice, bob, fleet):
    stranded = bob.post_job({**QUICK, "pool": "eu"}).json()["id"]
    saturated = dispatched(alice, {"pool": "default"})
    later = saturated.dispatched_at + timedelta(hours=1)
    assert overflow_pass(now=later) == {"overflowed": 0, "replaced": 0}
    assert Job.objects.get(pk=stranded).pool == "eu" and Job.objects.get(pk=saturated.id).pool == "default"


def test_the_next_overflow_is_when_the_first_job_will_have_waited_its_wait(alice, fleet):
    from jobs.services.overflow import next_due

    first = dispatched(alice)
    second = dispatched(alice, {**SPILL, "after_wait_s": 0.5})
    assert next_due(now=first.dispatched_at) == second.dispatched_at + timedelta(seconds=0.5)
    # once the second's moment has passed, the first's is next; after both, none
    after_second = second.dispatched_at + timedelta(seconds=0.6)
    assert next_due(now=after_second) == first.dispatched_at + timedelta(seconds=2)
    assert next_due(now=first.dispatched_at + timedelta(seconds=2.1)) is None
    # a job without overflow pools is never due
    alice.post_job({**QUICK})
    assert next_due(now=first.dispatched_at + timedelta(seconds=2.1)) is None


def test_a_stranded_job_is_due_when_its_wait_ends_and_not_while_its_pool_is_live(alice, fleet):
    from jobs.services.overflow import next_due

    placement = {"pool": "gone", "overflow": ["burst"], "after_wait_s": 3}
    job_id = alice.post_job({**QUICK, "placement": placement}).json()["id"]
    job = Job.objects.get(pk=job_id)
    assert job.status == Status.QUEUED  # no live worker in "gone": it waits in PostgreSQL
    due = job.next_attempt_at + timedelta(seconds=3)
    assert next_due(now=job.next_attempt_at, live={"default", "burst"}) == due
    assert next_due(now=job.next_attempt_at, live={"default", "burst", "gone"}) is None
