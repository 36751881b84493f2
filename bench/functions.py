"""Functions benchmark, one run (real PyPI, Docker, PostgreSQL, Redis). Run by hand:

    .venv/bin/python bench/functions.py [--calls 200]

Prints:
1. deploy time of a function with one small dependency (six): cold (the layer is built), then
   cached (a second function with the same lock reuses the layer);
2. the first invocation of a fresh version: without warm cells (a container is started and the
   module initialised on the job's path) and with a provisioned cell (started and initialised
   before the call);
3. warm invocations by name against the same code sent inline: the API's submit path in-process
   (p50 difference = the cost of the name lookup), and submit-to-result through a live stack
   (uvicorn, one worker) with ?wait;
4. import time saved: a module whose import takes ~100 ms, called inline (every job imports it)
   and deployed (the zygote imported it once).
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdasite.settings")
os.environ.setdefault("REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))

import django  # noqa: E402

django.setup()

from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

import sandbox  # noqa: E402
from accounts.services import api_key_issue, tenant_create  # noqa: E402
from functions.models import DependencyLayer, Function  # noqa: E402
from functions.services import builds, deploy  # noqa: E402
from functions.tasks import provisioned_specs  # noqa: E402
from jobs.execution import job_execute  # noqa: E402
from jobs.models import FINISHED, Job  # noqa: E402
from jobs.worker import sandbox_configure  # noqa: E402
from lambdasite.redis_client import get_queue, get_redis  # noqa: E402
from sandbox import layers  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_e2e", ROOT / "bench" / "e2e.py")  # (bench/ is not a
e2e = importlib.util.module_from_spec(_spec)  # package, and its functions.py would shadow the functions app)
_spec.loader.exec_module(e2e)
free_port, start_stack, stop_stack = e2e.free_port, e2e.start_stack, e2e.stop_stack

SIX = "six==1.16.0\n"
PY_SIX = "import six\n\ndef main(word):\n    return six.ensure_text(word).upper()\n"
ADD = "def main(a, b):\n    return a + b\n"
# ~100 ms of work at import time, as a large library's import is (parsing, building tables)
SLOW_IMPORT = """
import time
_t0 = time.perf_counter()
TABLE = {}
while time.perf_counter() - _t0 < 0.1:
    TABLE[len(TABLE)] = str(len(TABLE)) * 3
IMPORT_MS = (time.perf_counter() - _t0) * 1000

def main(key):
    return TABLE.get(key, "")
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def fmt(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.2f} ms, p95 {pct(values, 95):.2f} ms (n={len(values)})"


def setup_tenant():
    tenant = tenant_create(slug=f"bench-fn-{uuid.uuid4().hex[:6]}")
    quota = tenant.quota
    quota.max_concurrency, quota.submissions_per_minute, quota.monthly_gb_seconds = 16, 1_000_000, 1e9
    quota.max_provisioned_cells = 8
    quota.save()
    key = api_key_issue(tenant=tenant, name="bench", operator=True)
    return tenant, key


def build_now(version_id) -> float:
    t0 = time.perf_counter()
    builds.version_build(version_id=version_id, worker="bench:1")
    return time.perf_counter() - t0


def run_job(job_id) -> Job:
    job_execute(job_id=job_id)
    return Job.objects.get(pk=job_id)


def deploy_times(tenant, client) -> None:
    digest = None
    for layer in DependencyLayer.objects.filter(runtime="python"):
        if layer.lock.startswith("six==1.16.0 "):
            digest = layer.digest
    if digest:  # cold means cold: the layer for this lock is removed first
        for layer in DependencyLayer.objects.filter(digest=digest):
            layer.versions.update(layer=None)
            layers.remove(client, layer.volume)
            layer.delete()
    timings = {}
    for label in ("cold (layer built)", "cached (layer reused)"):
        t0 = time.perf_counter()
        _, version = deploy.function_create(
            tenant=tenant,
            user=None,
            name=f"six-{uuid.uuid4().hex[:6]}",
            runtime="python",
            spec=deploy.VersionSpec(code=PY_SIX, requirements=SIX),
        )
        build_now(version.pk)
        version.refresh_from_db()
        assert version.status == "ready", version.build_error
        timings[label] = time.perf_counter() - t0
    print("1. deploy with one small dependency (six), submit to ready:")
    for label, seconds in timings.items():
        print(f"   {label:<24} {seconds:.2f} s")


def first_invocations(tenant, pool) -> None:
    from functions.services.invoke import function_invoke

    print("2. first invocation of a fresh version (submit to result, worker in-process):")
    for deps in (False, True):
        for provisioned in (False, True):
            name = f"fresh-{uuid.uuid4().hex[:6]}"
            spec = deploy.VersionSpec(code=PY_SIX if deps else ADD, requirements=SIX if deps else "")
            function, version = deploy.function_create(
                tenant=tenant,
                user=None,
                name=name,
                runtime="python",
                spec=spec,
                provisioned=1 if provisioned else 0,
            )
            if deps:
                build_now(version.pk)
            if provisioned:
                from jobs import metrics
                from jobs.execution import worker_name

                # this process keeps its share of provisioned cells as a live job worker would
                metrics.worker_beat(role="jobs", name=worker_name().replace(":", "-"), ttl_s=300)
                pool.provision_source = provisioned_specs
                pool._provision_read = 0.0
                pool.maintain()  # what a worker's maintenance thread does within PROVISION_INTERVAL_S
            args = ["x"] if deps else [1, 2]
            t0 = time.perf_counter()
            job, _ = function_invoke(tenant=tenant, api_key=None, name=name, args=args)
            job = run_job(job.id)
            ms = (time.perf_counter() - t0) * 1000
            attempt = job.attempt_set.get()
            assert job.status == "succeeded", job.error
            layer = "with" if deps else "without"
            label = f"{layer} a dependency layer, {'provisioned' if provisioned else 'cold'}"
            init = f"init {attempt.init_ms:.1f} ms" if attempt.init_ms is not None else "init done before"
            print(f"   {label:<48} {ms:7.1f} ms  (cell {attempt.start_ms:.1f} ms, {init})")
            Function.objects.filter(pk=function.pk).update(provisioned=0)
    pool.provision_source = None
    pool.set_provisioned([])


def submit_path(tenant, key, calls: int) -> None:
    """The API's submit path in-process: POST /jobs with code vs POST /functions/{name}/invoke."""
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    inline_body = json.dumps({"runtime": "python", "code": ADD, "args": [2, 3]})
    named_body = json.dumps({"args": [2, 3]})
    inline, named = [], []
    for _ in range(20):  # warm-up: connections, caches
        client.post("/api/v1/jobs", inline_body, content_type="application/json", **auth)
        client.post("/api/v1/functions/adder/invoke", named_body, content_type="application/json", **auth)
    for _ in range(calls * 3):
        t0 = time.perf_counter()
        r1 = client.post("/api/v1/jobs", inline_body, content_type="application/json", **auth)
        t1 = time.perf_counter()
        r2 = client.post(
            "/api/v1/functions/adder/invoke", named_body, content_type="application/json", **auth
        )
        t2 = time.perf_counter()
        assert r1.status_code == 202 and r2.status_code == 202, (r1.content, r2.content)
        inline.append((t1 - t0) * 1000)
        named.append((t2 - t1) * 1000)
    delta = statistics.median(named) - statistics.median(inline)
    from functions.services.invoke import invocation_spec

    lookups = []
    for _ in range(2000):
        t0 = time.perf_counter()
        invocation_spec(tenant=tenant, name="adder", qualifier=None, args=[2, 3])
        lookups.append((time.perf_counter() - t0) * 1000)
    print("3a. submit path in-process (202, no wait):")
    print(f"   inline code   {fmt(inline)}")
    print(f"   by name       {fmt(named)}")
    print(f"   difference at p50 {delta:+.2f} ms (the two paths differ in serializers as well as the lookup)")
    print(
        f"   the name lookup itself (resolve name and version, build the job): {fmt(lookups)} "
        f"({'under' if statistics.median(lookups) < 1 else 'OVER'} the 1 ms budget)"
    )


def live_latency(key, calls: int) -> None:
    port = free_port()
    env = {**os.environ, "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    procs = start_stack(env, port, 1)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        inline_body = json.dumps({"runtime": "python", "code": ADD, "args": [2, 3]})
        named_body = json.dumps({"args": [2, 3]})

        def one(path, body) -> float:
            t0 = time.perf_counter()
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            payload = json.loads(response.read())
            assert response.status == 200 and payload["result"] == 5, payload
            return (time.perf_counter() - t0) * 1000

        for _ in range(10):
            one("/api/v1/jobs?wait=10", inline_body)
            one("/api/v1/functions/adder/invoke?wait=10", named_body)
        inline, named = [], []
        for _ in range(calls):
            inline.append(one("/api/v1/jobs?wait=10", inline_body))
            named.append(one("/api/v1/functions/adder/invoke?wait=10", named_body))
    finally:
        stop_stack(procs)
    print("3b. submit to result through a live stack (uvicorn, one worker, ?wait):")
    print(f"   inline code   {fmt(inline)}")
    delta = statistics.median(named) - statistics.median(inline)
    print(f"   by name       {fmt(named)}  (difference at p50 {delta:+.2f} ms)")


def import_saved(tenant, pool, calls: int) -> None:
    from functions.services.invoke import function_invoke
    from jobs.services.submit import JobSpec, job_submit

    deploy.function_create(
        tenant=tenant,
        user=None,
        name="slow-import",
        runtime="python",
        spec=deploy.VersionSpec(code=SLOW_IMPORT),
    )
    inline, named, first_init = [], [], None
    for i in range(calls):
        job, _ = job_submit(
            tenant=tenant, api_key=None, spec=JobSpec(runtime="python", code=SLOW_IMPORT, args=[i])
        )
        inline.append(run_job(job.id).duration_ms)
        job, _ = function_invoke(tenant=tenant, api_key=None, name="slow-import", args=[i])
        job = run_job(job.id)
        named.append(job.duration_ms)
        if first_init is None:
            first_init = job.attempt_set.get().init_ms
    print("4. a module whose import takes ~100 ms (job duration in the sandbox):")
    print(f"   inline (imports every job)         {fmt(inline)}")
    print(f"   deployed (zygote imported it once) {fmt(named)}")
    print(f"   the first call's cell initialised the module in {first_init:.1f} ms, outside the job's time")
    print(f"   saved per call: {statistics.median(inline) - statistics.median(named):.1f} ms at p50")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    get_redis().flushdb()
    tenant, issued = setup_tenant()
    pool = sandbox_configure()
    client = pool.client
    try:
        deploy_times(tenant, client)
        first_invocations(tenant, pool)
        deploy.function_create(
            tenant=tenant, user=None, name="adder", runtime="python", spec=deploy.VersionSpec(code=ADD)
        )
        submit_path(tenant, issued.plaintext, args.calls)
        # the jobs that run left queued must not compete with the live stack's
        Job.objects.filter(tenant=tenant).exclude(status__in=FINISHED).update(
            status="cancelled", cancel_requested=True, finished_at=timezone.now()
        )
        get_queue().empty()
        # a tenant of its own: the jobs the submit-path run left queued must not be in front
        live_tenant, live_key = setup_tenant()
        deploy.function_create(
            tenant=live_tenant, user=None, name="adder", runtime="python", spec=deploy.VersionSpec(code=ADD)
        )
        live_latency(live_key.plaintext, max(50, args.calls // 2))
        import_saved(tenant, pool, 20)
    finally:
        pool.close()
    print(f"(sandbox: {sandbox.__name__}; tenant {tenant.slug})")


if __name__ == "__main__":
    main()
