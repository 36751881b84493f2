"""Functions end to end with the real package registries (PyPI, npm), Docker, PostgreSQL and Redis:
deploy with dependencies, build on a worker, invoke by name and alias, share layers, fail builds
readably, and never give a function network at run time."""

from __future__ import annotations

import re

import pytest

from accounts.models import UsageCharge
from functions.models import BuildStatus, DependencyLayer, FunctionVersion
from functions.services.builds import builds_reconcile
from functions.services.layers import layers_collect
from jobs import metrics
from jobs.execution import worker_name
from jobs.models import Job, Status
from jobs.tests.support import ThreadWorker
from sandbox import layers

from .support import call, deploy, invoke

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

SIX = "six==1.16.0\n"
PY_SIX = """
import six

def main(word):
    return {"six": six.__version__, "word": six.ensure_text(word).upper(), "from": six.__file__}
"""
PY_SIX_V2 = PY_SIX.replace(".upper()", ".lower()")
NODE_IS_NUMBER = """
const isNumber = require('is-number');
function main(value) {
  return { value, isNumber: isNumber(value), from: require.resolve('is-number') };
}
"""


@pytest.fixture
def invoke_sync(sandbox_pool):
    """Invoke with ?wait while a worker thread runs jobs (as a live worker would)."""

    def sync(persona, name: str, args=(), qualifier: str | None = None):
        with ThreadWorker(sandbox_pool):
            response = invoke(persona, name, args, qualifier=qualifier, wait=20)
        assert response.status_code == 200, response.json()
        return response.json()

    return sync


def version(name: str, number: int = 1) -> FunctionVersion:
    return FunctionVersion.objects.select_related("layer").get(function__name=name, number=number)


def build_log(persona, name: str, number: int = 1) -> str:
    body = call(persona, "GET", f"/api/v1/functions/{name}/versions/{number}/build-logs").json()
    return "\n".join(line["text"] for line in body["lines"])


def layer_volumes(docker_client) -> set[str]:
    return set(layers.volumes(docker_client))  # names


def test_a_python_function_with_a_wheel_dependency_builds_and_runs_by_name_and_alias(
    alice, run_worker, invoke_sync
):
    created = deploy(alice, name="shout", code=PY_SIX, requirements=SIX)
    assert created.status_code == 201 and created.json()["version"]["status"] == "building"
    queued = invoke(alice, "shout", ["held"])  # before the build: held, then run once it is built
    assert queued.status_code == 202
    run_worker()
    v1 = version("shout")
    assert v1.status == BuildStatus.READY, v1.build_error
    assert v1.lock.startswith("six==1.16.0 --hash=sha256:")
    assert v1.layer.status == BuildStatus.READY and v1.layer.size_bytes > 0
    log = build_log(alice, "shout")
    assert "resolved 1 package" in log and "layer ready" in log
    held = Job.objects.get(pk=queued.json()["id"])
    assert held.status == Status.SUCCEEDED and held.result["word"] == "HELD"

    body = invoke_sync(alice, "shout", ["hi"])
    assert body["status"] == "succeeded", body["error"]
    assert body["result"] == {"six": "1.16.0", "word": "HI", "from": "/opt/deps/site-packages/six.py"}
    assert (body["function"], body["version"], body["alias"]) == ("shout", 1, None)

    assert call(alice, "PUT", "/api/v1/functions/shout/aliases/prod", {"version": 1}).status_code == 201
    v2 = call(
        alice, "POST", "/api/v1/functions/shout/versions", {"code": PY_SIX_V2, "requirements": SIX}
    ).json()
    assert v2["number"] == 2
    run_worker()
    assert version("shout", 2).layer_id == v1.layer_id  # the same lock: the layer is reused, not rebuilt

    # reused or installed, the log reads the same (but for numbers): it never tells that the layer
    # existed (another tenant's, say), nor names its volume
    def shape(text: str) -> list[str]:
        return [
            re.sub(r"[0-9.]+", "N", line) for line in text.splitlines() if line.startswith("[lambdasite]")
        ]

    assert shape(build_log(alice, "shout", 2)) == shape(build_log(alice, "shout", 1))
    assert "lambdasite-layer" not in build_log(alice, "shout", 2)
    latest = invoke_sync(alice, "shout", ["Mixed"])
    assert (latest["version"], latest["result"]["word"]) == (2, "mixed")
    via_prod = invoke_sync(alice, "shout", ["Mixed"], qualifier="prod")
    assert (via_prod["version"], via_prod["alias"], via_prod["result"]["word"]) == (1, "prod", "MIXED")
    call(alice, "PUT", "/api/v1/functions/shout/aliases/prod", {"version": 2})
    asynchronous = invoke(alice, "shout", ["Moved"], qualifier="prod")
    assert asynchronous.status_code == 202
    run_worker()
    job = Job.objects.get(pk=asynchronous.json()["id"])
    assert job.status == Status.SUCCEEDED and job.result["word"] == "moved"
    assert (job.function_name, job.version_number, job.alias) == ("shout", 2, "prod")


def test_a_node_function_with_an_npm_dependency_builds_and_runs(alice, run_worker, invoke_sync):
    created = deploy(
        alice, name="numbers", runtime="node", code=NODE_IS_NUMBER, dependencies={"is-number": "7.0.0"}
    )
    assert created.status_code == 201
    run_worker()
    v1 = version("numbers")
    assert v1.status == BuildStatus.READY, v1.build_error
    assert '"node_modules/is-number"' in v1.lock and "sha512-" in v1.lock
    body = invoke_sync(alice, "numbers", ["42"])
    assert body["status"] == "succeeded", body["error"]
    assert body["result"] == {
        "value": "42",
        "isNumber": True,
        "from": "/opt/deps/node_modules/is-number/index.js",
    }


def test_two_functions_with_the_same_lock_share_one_layer(alice, bob, run_worker, invoke_sync):
    deploy(alice, name="first", code=PY_SIX, requirements=SIX)
    deploy(bob, name="second", code=PY_SIX, requirements="six == 1.16.0")  # written differently, same lock
    run_worker()
    first, second = version("first"), version("second")
    assert first.status == second.status == BuildStatus.READY, (first.build_error, second.build_error)
    assert first.layer_id == second.layer_id
    assert DependencyLayer.objects.filter(digest=first.layer.digest).count() == 1
    assert invoke_sync(bob, "second", ["x"])["result"]["word"] == "X"


@pytest.mark.parametrize(
    ("runtime", "deps", "words"),
    [
        ("python", {"requirements": "docopt==0.6.2\n"}, ["only a source distribution", "docopt"]),
        ("python", {"requirements": "lambdasite-no-such-package-zz9==1.0\n"}, ["no such package"]),
        ("python", {"requirements": "six==999.0.0\n"}, ["no published version"]),
        ("node", {"dependencies": {"core-js": "3.39.0"}}, ["core-js@3.39.0", "install script"]),
        ("node", {"dependencies": {"lambdasite-no-such-package-zz9": "1.0.0"}}, ["no such package"]),
    ],
)
def test_builds_that_cannot_work_fail_readably_and_leave_no_layer(
    alice, run_worker, docker_client, runtime, deps, words
):
    before = layer_volumes(docker_client)
    code = PY_SIX if runtime == "python" else NODE_IS_NUMBER
    deploy(alice, name="broken", runtime=runtime, code=code, **deps)
    held = invoke(alice, "broken", ["x"]).json()["id"]
    run_worker()
    v1 = version("broken")
    assert v1.status == BuildStatus.FAILED
    for word in words:
        assert word in v1.build_error, v1.build_error
    assert v1.layer is None and not DependencyLayer.objects.exists()
    assert layer_volumes(docker_client) == before
    assert "build failed" in build_log(alice, "broken")
    job = Job.objects.get(pk=held)  # the invocation that waited for the build fails with its error
    assert (
        job.status == Status.FAILED
        and job.error["type"] == "BuildFailed"
        and words[0] in job.error["message"]
    )
    refused = invoke(alice, "broken", ["x"])
    assert refused.status_code == 409 and words[0] in refused.json()["error"]["message"]


def six_over_a_cap(persona, run_worker, docker_client, name: str) -> str:
    """Deploy a function needing six and build it under a cap it exceeds: the build fails and
    leaves no layer, neither row nor volume. -> the build's error"""
    before = layer_volumes(docker_client)
    deploy(persona, name=name, code=PY_SIX, requirements=SIX)
    run_worker()
    v1 = version(name)
    assert v1.status == BuildStatus.FAILED
    assert not DependencyLayer.objects.exists()
    assert layer_volumes(docker_client) == before
    return v1.build_error


def test_a_layer_over_the_tenants_size_cap_fails_and_is_removed(alice, run_worker, docker_client):
    quota = alice.tenant.quota
    quota.max_dependency_bytes = 10_000  # six installs about 50 kB
    quota.save()
    error = six_over_a_cap(alice, run_worker, docker_client, "big")
    assert "over" in error and "cap" in error


def test_a_layer_of_too_many_files_fails_and_is_removed(alice, run_worker, docker_client, settings):
    """A layer's size alone does not bound its inodes: many tiny files are capped too."""
    settings.LAYER_MAX_FILES = 5  # six installs a dozen files and directories
    error = six_over_a_cap(alice, run_worker, docker_client, "many")
    assert "files" in error and "cap of 5" in error


def test_a_function_with_dependencies_still_has_no_network(alice, run_worker, invoke_sync):
    code = (
        PY_SIX
        + """
import socket

def reach(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return "connected"
    except OSError as exc:
        return type(exc).__name__

def probe():
    import os
    return {"pypi": reach("151.101.0.223", 443), "host": reach("172.17.0.1", 5432),
            "ifaces": sorted(os.listdir("/sys/class/net"))}
"""
    )
    deploy(alice, name="probe", code=code, requirements=SIX, handler="probe")
    run_worker()
    body = invoke_sync(alice, "probe", [])
    assert body["status"] == "succeeded", body["error"]
    assert body["result"]["ifaces"] == ["lo"]
    assert body["result"]["pypi"] != "connected" and body["result"]["host"] != "connected"


def test_the_layer_is_read_only_to_the_function(alice, run_worker, invoke_sync):
    code = (
        PY_SIX
        + """
def tamper():
    try:
        open("/opt/deps/site-packages/six.py", "a").write("x")
        return "written"
    except OSError as exc:
        return type(exc).__name__
"""
    )
    deploy(alice, name="tamper", code=code, requirements=SIX, handler="tamper")
    run_worker()
    assert invoke_sync(alice, "tamper", [])["result"] in ("OSError", "PermissionError")


def test_unused_layers_are_collected_and_used_ones_kept(alice, run_worker, docker_client, settings):
    deploy(alice, name="keep", code=PY_SIX, requirements=SIX)
    run_worker()
    layer = version("keep").layer
    settings.LAYER_GC_AFTER_S = 0
    assert layers_collect(client=docker_client)["removed"] == []  # a version uses it
    call(alice, "DELETE", "/api/v1/functions/keep")
    result = layers_collect(client=docker_client)
    assert result["removed"] == [layer.volume]
    assert not DependencyLayer.objects.exists() and not layers.exists(docker_client, layer.volume)


def test_a_build_whose_worker_died_is_run_again_by_the_reconciler(alice, run_worker, settings):
    from django.utils import timezone

    deploy(alice, name="orphan", code=PY_SIX, requirements=SIX)
    from lambdasite.redis_client import build_queue_name, get_queue

    get_queue(build_queue_name()).empty()  # the enqueued build is lost (a worker took it and died)
    FunctionVersion.objects.update(builder="gone:1", lease_expires_at=timezone.now(), build_attempts=1)
    counts = builds_reconcile(now=timezone.now() + timezone.timedelta(seconds=1))
    assert counts["builds_retried"] == 1
    run_worker()
    assert version("orphan").status == BuildStatus.READY


SLOW_INIT = "import time\ntime.sleep(0.3)\nREADY = 'warm'\n\ndef main():\n    return READY\n"


def test_warming_starts_a_cell_that_has_run_the_module_before_the_first_call(
    alice, invoke_sync, sandbox_pool
):
    from functions.tasks import ProvisionWatch, provisioned_specs

    deploy(alice, name="slow", code=SLOW_INIT)
    metrics.worker_beat(role="jobs", name=worker_name().replace(":", "-"), ttl_s=60)  # this process is live
    sandbox_pool.provision_source, sandbox_pool.provision_changed = provisioned_specs, ProvisionWatch()
    try:
        sandbox_pool.maintain()  # nothing wanted yet
        assert sandbox_pool.provisioned_cells() == 0
        response = call(alice, "POST", "/api/v1/functions/slow/warm", {"count": 1})
        assert response.status_code == 202
        assert response.json() == {"function": "slow", "version": 1, "queued": 1}
        sandbox_pool.maintain()  # the pool's thread: the warm-up was asked for, so it reads at once
        assert sandbox_pool.provisioned_cells() == 1
    finally:
        sandbox_pool.provision_source = sandbox_pool.provision_changed = None
        sandbox_pool.set_provisioned([])
    body = invoke_sync(alice, "slow", [])
    assert body["result"] == "warm"
    attempt = body["attempt_history"][0]
    assert attempt["init_ms"] is None  # the module's 300 ms initialisation was paid before the call
    # ... and billed to the tenant, as a job's time would be
    charge = UsageCharge.objects.get(tenant=alice.tenant, kind=UsageCharge.Kind.WARM)
    assert charge.gb_seconds >= 0.3 * 128 / 1024
    assert call(alice, "POST", "/api/v1/functions/slow/warm", {"count": 99}).status_code == 400


def test_provisioned_cells_are_kept_ready_by_the_pool(alice, invoke_sync, sandbox_pool):
    from functions.tasks import provisioned_specs

    deploy(alice, name="kept", code=SLOW_INIT, provisioned=1)
    metrics.worker_beat(role="jobs", name=worker_name().replace(":", "-"), ttl_s=60)  # this process is live
    sandbox_pool.provision_source = provisioned_specs
    sandbox_pool._provision_read = 0.0
    try:
        sandbox_pool.maintain()  # what the worker's maintenance thread does every PROVISION_INTERVAL_S
        assert sandbox_pool.provisioned_cells() == 1
        body = invoke_sync(alice, "kept", [])
        assert body["result"] == "warm" and body["attempt_history"][0]["init_ms"] is None
        call(alice, "PATCH", "/api/v1/functions/kept", {"provisioned": 0})
        sandbox_pool._provision_read = 0.0
        sandbox_pool.maintain()
        assert sandbox_pool.provisioned_cells() == 0  # no longer wanted: an ordinary idle cell now
    finally:
        sandbox_pool.provision_source = None
        sandbox_pool.set_provisioned([])
