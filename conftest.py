"""Shared personas and real-component fixtures: PostgreSQL, Redis and Docker are never mocked here."""

from __future__ import annotations

import ast
import json
import os

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
SYSTEM_MARKS = frozenset({"system", "docker", "browser"})


def pytest_ignore_collect(collection_path, config):
    """Under `-m "not system"` (make test-unit) a test module marked system, docker or browser as a
    whole is not even imported: all its tests would be deselected, and importing them (the fuzz
    test builds the whole schema) was half the unit tier's start. None: no opinion otherwise."""
    if config.getoption("markexpr") == "not system" and _module_is_system_tier(collection_path):
        return True
    return None


def _module_is_system_tier(path) -> bool:
    if path.suffix != ".py" or not path.name.startswith("test_"):
        return False
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            marks = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            return any(_mark_name(mark) in SYSTEM_MARKS for mark in marks)
    return False


def _mark_name(node) -> str | None:
    """`pytest.mark.NAME` or `pytest.mark.NAME(...)` -> NAME."""
    node = node.func if isinstance(node, ast.Call) else node
    return node.attr if isinstance(node, ast.Attribute) else None


def pytest_collection_modifyitems(config, items):
    """The system tier: everything that needs the Docker engine or a browser, plus the tests
    marked `system` by hand (compose, partitions, chaos, a live server). `make test-unit`
    runs the rest with `-m "not system"`; `make test` runs both."""
    for item in items:
        needs_docker = DOCKER_FIXTURES.intersection(item.fixturenames)
        if needs_docker or any(item.get_closest_marker(name) for name in SYSTEM_MARKS - {"system"}):
            item.add_marker(pytest.mark.system)


_truncate = DatabaseOperations.sql_flush
# what migrate made and post_migrate would only make again after the flush (~50 ms a test)
_KEPT_BY_THE_FLUSH = frozenset({"django_content_type", "auth_permission"})


def _delete_rows(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """Empty the tables after a transactional test with DELETE in one transaction instead of one
    TRUNCATE: the same empty tables in a few milliseconds instead of ~0.3 s (TRUNCATE makes new
    files for all 31 tables, the unit tier's largest cost). The lock waits for and then shuts out
    every other session, as TRUNCATE's does, so nothing a lingering process commits survives.
    Django's foreign keys are DEFERRABLE INITIALLY DEFERRED, so the order does not matter; a flush
    that must reset sequences or cascade keeps TRUNCATE."""
    if reset_sequences or allow_cascade or not tables:
        return _truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    emptied = [self.quote_name(table) for table in sorted(set(tables) - _KEPT_BY_THE_FLUSH)]
    return [
        f"LOCK TABLE {', '.join(emptied)} IN ACCESS EXCLUSIVE MODE",
        "SET CONSTRAINTS ALL DEFERRED",
        *(f"DELETE FROM {table}" for table in emptied),
    ]


DatabaseOperations.sql_flush = _delete_rows


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """TEST_DB_SUFFIX=unit (set by `make test-unit`) gives a run its own test database, so the unit
    tier can run while `make test` does."""
    if suffix := os.environ.get("TEST_DB_SUFFIX"):
        for database in settings.DATABASES.values():
            database.setdefault("TEST", {})["NAME"] = f"test_{database['NAME']}_{suffix}"


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


# a live worker of the default pool, as every stack has: the fill dispatches only to pools with a live
# worker (jobs.pools), so without it no test could see a job dispatched without starting a worker.
# A test of a pool without workers removes it (``pools.gone(worker=TEST_POOL_WORKER, pools=["default"])``).
TEST_POOL_WORKER = "test-default-pool"


@pytest.fixture(autouse=True)
def redis_conn():
    from jobs import pools

    conn = get_redis()
    conn.flushdb()
    pools.beat(worker=TEST_POOL_WORKER, pools=[pools.DEFAULT_POOL], ttl_s=24 * 3600)
    pools.forget_live()
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
