"""Shared personas and real-component fixtures: PostgreSQL, Redis and Docker are never mocked here."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db.backends.postgresql.operations import DatabaseOperations
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.services import api_key_issue, membership_set, tenant_create, user_get_or_create
from lambdasite.redis_client import build_queue_name, get_queue, get_redis

# A test that asks for one of these (directly or through another fixture) runs jobs in Docker
DOCKER_FIXTURES = frozenset({"docker_client", "sandbox_pool", "run_worker"})


def pytest_collection_modifyitems(config, items):
    """The system tier: everything that needs the Docker engine or a browser, plus the tests
    marked `system` by hand (compose, partitions, chaos, a live server). `make test-unit`
    runs the rest with `-m "not system"`; `make test` runs both."""
    for item in items:
        needs_docker = DOCKER_FIXTURES.intersection(item.fixturenames)
        if needs_docker or item.get_closest_marker("docker") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.system)


_truncate = DatabaseOperations.sql_flush


def _delete_rows(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """Empty the tables after a transactional test with DELETE in one transaction instead of one
    TRUNCATE: the same empty tables in a few milliseconds instead of ~0.3 s (TRUNCATE makes new
    files for all 31 tables, the unit tier's largest cost). Django's foreign keys are DEFERRABLE
    INITIALLY DEFERRED, so the order does not matter; a flush that must reset sequences or
    cascade keeps TRUNCATE."""
    if reset_sequences or allow_cascade or not tables:
        return _truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    return ["SET CONSTRAINTS ALL DEFERRED", *(f"DELETE FROM {self.quote_name(table)}" for table in tables)]


DatabaseOperations.sql_flush = _delete_rows


@pytest.fixture(scope="session", autouse=True)
def _redis_is_the_test_database():
    """The suite flushes Redis: refuse to run against database 0, which `make run` uses."""
    assert not settings.REDIS_URL.rstrip("/").endswith("/0"), (
        "tests need REDIS_URL on a scratch database (use make test)"
    )


@pytest.fixture(scope="session", autouse=True)
def _static_files_found_on_request():
    """Every test client builds the middleware stack afresh, and WhiteNoise with finders and no
    autorefresh lists every static file at start (a fifth of the unit tier's time). With autorefresh
    it finds the same files, with the same headers, when one is asked for."""
    with override_settings(WHITENOISE_AUTOREFRESH=True):
        yield


@pytest.fixture(autouse=True)
def redis_conn():
    conn = get_redis()
    conn.flushdb()
    yield conn


@pytest.fixture(scope="session")
def docker_client():
    """The real engine. A missing daemon is a failure, never a skip."""
    import docker

    client = docker.from_env(timeout=30)
    client.ping()
    return client


@pytest.fixture(scope="session")
def sandbox_pool(docker_client):
    from jobs.worker import sandbox_configure

    pool = sandbox_configure()
    yield pool
    pool.close()


class Persona:
    def __init__(self, slug: str, email: str) -> None:
        self.tenant = tenant_create(slug=slug, name=slug.title())
        self.user = user_get_or_create(email=email, password="pw-" + slug)
        membership_set(tenant=self.tenant, user=self.user, role=Membership.Role.OWNER)
        issued = api_key_issue(tenant=self.tenant, name=f"{slug} key", created_by=self.user)
        self.api_key = issued.api_key
        self.key = issued.plaintext
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")

    def post_job(self, body: dict, **extra):
        return self.client.post(
            "/api/v1/jobs", data=json.dumps(body), content_type="application/json", **extra
        )


@pytest.fixture
def alice(db):
    return Persona("acme", "alice@acme.test")


@pytest.fixture
def bob(db):
    """The other tenant, used by every ownership test."""
    return Persona("globex", "bob@globex.test")


@pytest.fixture
def run_worker(sandbox_pool):
    """Drain the queue with a real RQ worker in this process (burst mode), jobs running in Docker."""
    from jobs.worker import SandboxWorker

    def drain() -> None:
        queue = get_queue()
        queues = [get_queue(build_queue_name()), queue]  # as the worker command: builds first
        SandboxWorker(queues, connection=queue.connection).work(
            burst=True, with_scheduler=False, logging_level="WARNING"
        )

    return drain
