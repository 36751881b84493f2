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


@pytest.fixture(scope="module")
def egress_pool(docker_client, internet):
    """A reusing pool whose cells have a door to an egress proxy that reaches the test internet
    (EGRESS_ALLOW_CIDRS=198.18.0.0/15, names from ``egress_pool.names``); no container is left."""
    import shutil
    import tempfile

    from sandbox.egress import EgressProxy
    from sandbox.netpolicy import NetPolicy

    from .internet import ALLOW_CIDRS, Names

    names = Names()
    directory = tempfile.mkdtemp(prefix="ls-doors-")
    proxy = EgressProxy(
        directory=directory,
        policy=NetPolicy(allow_cidrs=ALLOW_CIDRS, resolve=names),
        resolve=names,
        connect_timeout_s=3,
        head_timeout_s=3,
    )
    p = sandbox.Sandbox(reuse="tenant", egress=proxy)
    p.names, p.proxy = names, proxy
    yield p
    p.close()
    proxy.close()
    shutil.rmtree(directory, ignore_errors=True)
    left = docker_client.containers.list(all=True, filters={"label": f"lambdasite.pool={p.pool_id}"})
    assert left == []
