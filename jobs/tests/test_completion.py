"""Synchronous invoke (?wait): the finished job when it ends in time, else the 202 body; bad waits refused."""

from __future__ import annotations

import json
import time

import pytest

from jobs.models import Job
from jobs.tests.support import QUICK, SLEEPY, ThreadWorker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def test_wait_returns_the_finished_job(alice, sandbox_pool):
    with ThreadWorker(sandbox_pool):
        response = alice.client.post(
            "/api/v1/jobs?wait=20", data=json.dumps(QUICK), content_type="application/json"
        )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["result"] == 5 and body["attempt_history"]


def test_wait_gives_the_202_body_when_the_job_takes_longer(alice, sandbox_pool):
    started = time.monotonic()
    response = alice.client.post(
        "/api/v1/jobs?wait=0.3", data=json.dumps(SLEEPY), content_type="application/json"
    )
    assert response.status_code == 202 and response.json()["status"] in ("queued", "dispatched")
    assert 0.3 <= time.monotonic() - started < 3


def test_a_finished_wait_answers_with_the_body_the_worker_published_and_it_equals_a_get(
    alice, sandbox_pool, redis_conn
):
    from jobs import completion

    with ThreadWorker(sandbox_pool):
        response = alice.client.post(
            "/api/v1/jobs?wait=20", data=json.dumps(QUICK), content_type="application/json"
        )
    body = response.json()
    assert response.status_code == 200 and body["result"] == 5
    published = redis_conn.get(completion.DONE_KEY.format(body["id"]))
    assert published not in (None, b"1") and json.loads(published) == body  # no database read needed
    assert alice.client.get(f"/api/v1/jobs/{body['id']}").json() == body


def test_a_failed_first_attempt_publishes_the_same_body_as_a_get(alice, sandbox_pool, redis_conn):
    """The finish renders a first attempt's history from what it just wrote (no read back): the
    published body, error and billing included, must still equal what PostgreSQL then serves."""
    from jobs import completion

    failing = {"runtime": "python", "code": "def main():\n    print('x')\n    raise ValueError('no')\n"}
    with ThreadWorker(sandbox_pool):
        response = alice.client.post(
            "/api/v1/jobs?wait=20", data=json.dumps(failing), content_type="application/json"
        )
    body = response.json()
    assert (
        response.status_code == 200 and body["status"] == "failed" and body["error"]["type"] == "ValueError"
    )
    published = json.loads(redis_conn.get(completion.DONE_KEY.format(body["id"])))
    assert published == body == alice.client.get(f"/api/v1/jobs/{body['id']}").json()
    history = body["attempt_history"]
    assert len(history) == 1 and history[0]["error"]["type"] == "ValueError" and history[0]["worker"]


def test_a_body_too_large_to_publish_is_read_from_postgresql(alice, sandbox_pool, redis_conn):
    from jobs import completion

    big = {"runtime": "python", "code": "def main():\n    return 'x' * 20000\n"}
    with ThreadWorker(sandbox_pool):
        response = alice.client.post(
            "/api/v1/jobs?wait=20", data=json.dumps(big), content_type="application/json"
        )
    body = response.json()
    assert response.status_code == 200 and body["result"] == "x" * 20000
    assert redis_conn.get(completion.DONE_KEY.format(body["id"])) == b"1"
    assert alice.client.get(f"/api/v1/jobs/{body['id']}").json() == body


@pytest.mark.parametrize("wait", ["-1", "abc", "1000", "nan"])
def test_a_bad_wait_is_a_400_and_nothing_is_created(alice, wait):
    response = alice.client.post(
        f"/api/v1/jobs?wait={wait}", data=json.dumps(QUICK), content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert Job.objects.count() == 0


# --- the waiting itself: one subscription per event loop, the flag, and PostgreSQL as the fallback


def _announce(job_id) -> None:
    from jobs import completion
    from lambdasite.redis_client import get_redis

    with get_redis().pipeline(transaction=False) as pipe:
        completion.announce(pipe, job_id)
        pipe.execute()


async def _closing(waiting):
    """Await ``waiting``, then close the database connection its reads opened in asgiref's thread."""
    from asgiref.sync import sync_to_async
    from django.db import connection

    try:
        return await waiting
    finally:
        await sync_to_async(lambda: connection.close())()


def _finished_job(alice, status="succeeded") -> Job:
    return Job.objects.create(
        tenant=alice.tenant, runtime="python", code="x", status=status, timeout_ms=1000, memory_mb=128
    )


def test_many_waiters_share_one_subscription_and_each_wakes_for_its_own_job(alice, redis_conn):
    import asyncio

    from jobs import completion

    ids = [str(_finished_job(alice, status="running").id) for _ in range(20)]

    async def scenario():
        before = await completion._redis_async().execute_command("PUBSUB", "NUMPAT")
        waits = [asyncio.create_task(completion.wait_finished(job_id, 10)) for job_id in ids]
        await asyncio.sleep(0.3)
        patterns = await completion._redis_async().execute_command("PUBSUB", "NUMPAT") - before
        channels = await completion._redis_async().execute_command(
            "PUBSUB", "CHANNELS", "lambdasite:job-done:*"
        )
        started = time.monotonic()
        for job_id in ids[:10]:  # half of them finish; the rest must not wake up
            await asyncio.to_thread(_announce, job_id)
        woken = await asyncio.gather(*waits[:10])
        woke_in = time.monotonic() - started
        await asyncio.sleep(0.3)
        still_waiting = [not task.done() for task in waits[10:]]
        for task in waits[10:]:
            task.cancel()
        return patterns, channels, woken, woke_in, still_waiting

    patterns, channels, woken, woke_in, still_waiting = asyncio.run(scenario())
    assert patterns == 1 and channels == []  # one pattern subscription, no channel per waiter
    assert woken == [True] * 10 and woke_in < 2
    assert all(still_waiting)


def test_a_job_that_finished_before_the_waiter_registered_is_seen_by_its_flag(alice, redis_conn):
    import asyncio

    from jobs import completion

    job_id = str(_finished_job(alice, status="running").id)  # the row says running: only the flag can tell
    _announce(job_id)
    started = time.monotonic()
    assert asyncio.run(completion.wait_finished(job_id, 5)) is True
    assert time.monotonic() - started < 2


def test_a_lost_message_ends_in_a_database_read_at_the_deadline(alice, redis_conn):
    import asyncio

    from jobs import completion

    finished = str(_finished_job(alice, status="succeeded").id)  # finished, but Redis never heard of it
    running = str(_finished_job(alice, status="running").id)
    assert asyncio.run(_closing(completion.wait_finished(finished, 0.3))) is True
    assert asyncio.run(_closing(completion.wait_finished(running, 0.3))) is False


def test_without_redis_the_waiter_polls_postgresql_until_the_job_finishes(alice, monkeypatch):
    import asyncio
    import threading

    from jobs import completion

    monkeypatch.setattr("lambdasite.redis_client.redis_url", lambda: "redis://127.0.0.1:1/0")  # no one there
    job = _finished_job(alice, status="running")

    def finish_later():
        from django.db import connection

        time.sleep(0.8)
        Job.objects.filter(pk=job.pk).update(status="succeeded")
        connection.close()

    threading.Thread(target=finish_later).start()
    started = time.monotonic()
    assert asyncio.run(_closing(completion.wait_finished(job.id, 10))) is True
    assert 0.8 <= time.monotonic() - started < 3
