"""The sandbox suites' shared fixture: one reusing pool per test module (test_functions and test_idle_cpu
make their own), which must leave no container behind."""

from __future__ import annotations

import pytest

import sandbox


@pytest.fixture(scope="module")
def pool(docker_client):
    p = sandbox.Sandbox(reuse="tenant")
    yield p
    p.close()
    left = docker_client.containers.list(all=True, filters={"label": f"lambdasite.pool={p.pool_id}"})
    assert left == []


@pytest.fixture(scope="session")
def internet():
    """The test internet (sandbox/tests/internet.py): a namespace at 198.18.0.2 and 198.19.0.2 serving
    HTTP and HTTPS. Root only; removed at the end of the session."""
    from .internet import Internet

    net = Internet().start()
    yield net
    net.stop()
