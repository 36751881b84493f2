"""The web under uvicorn with a tiny connection pool: requests waiting on ?wait do not hold
database connections, so more of them than the pool's size all get their answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from jobs.tests.live_server import post_json
from jobs.tests.test_chaos import Stack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def test_more_waiting_requests_than_pooled_connections(alice):
    alice.tenant.quota.max_concurrency = 10
    alice.tenant.quota.save()
    stack = Stack(settings.REDIS_URL)
    stack.env.update(DB_POOL_MAX_SIZE="2", DB_POOL_TIMEOUT_S="3")
    stack.start("reconciler", "scheduler")
    stack.start("worker-a", "worker")
    stack.start("worker-b", "worker")
    try:
        url = stack.start_web()

        def submit(i: int):
            body = {
                "runtime": "python",
                "code": "import time\ndef main(i):\n    time.sleep(1.5)\n    return i\n",
                "args": [i],
            }
            return post_json(url + "/api/v1/jobs?wait=20", alice.key, body, timeout=40)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(submit, range(6)))
    finally:
        stack.stop()
    assert [(status, body["status"], body["result"]) for status, body in answers] == [
        (200, "succeeded", i) for i in range(6)
    ]


def test_an_exhausted_pool_is_a_503_not_a_500(db):
    """If every pooled connection stays busy past DB_POOL_TIMEOUT_S, the API says so with 503."""
    from django.test import Client
    from psycopg_pool import PoolTimeout

    from lambdasite import urls

    client = Client(raise_request_exception=False)
    original = urls.urlpatterns

    def busy(request):
        raise PoolTimeout("couldn't get a connection after 10.00 sec")

    from django.urls import path

    urls.urlpatterns = [path("api/v1/busy", busy), path("busy", busy), *original]
    try:
        from django.urls import clear_url_caches

        clear_url_caches()
        api = client.get("/api/v1/busy")
        page = client.get("/busy")
    finally:
        urls.urlpatterns = original
        clear_url_caches()
    assert (
        api.status_code == 503 and api.json()["error"]["code"] == "overloaded" and api["Retry-After"] == "1"
    )
    assert page.status_code == 503
