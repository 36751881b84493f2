"""The served OpenAPI schema against the server it describes: Schemathesis (every operation, every
check, its stateful phase) drives a real uvicorn on the test database and Redis, as two tenants.

A 5xx, an answer the schema does not describe, a request the schema allows but the server refuses
(or the reverse), and one tenant reading another's object all fail the test. Jobs stay queued: no
worker runs. The run is bounded by examples per operation and a time budget."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from jobs.tests.test_chaos import Stack

# system tier: a live uvicorn, and a run of over a minute
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.system]

ROOT = Path(__file__).resolve().parents[2]
SEED = 20240521
MAX_EXAMPLES = 8
TIME_BUDGET_S = 75

# Statuses a request the schema calls valid may still get, because what decides them is not in
# the request: the tenant's quotas and rate limits (429), a state or name taken (409), a size
# cap counted in bytes (413) and an idempotency key reused (422).
ACCEPTED = ["2xx", "401", "403", "404", "409", "413", "422", "429"]

CONFIG = """\
seed = {seed}
workers = 1
max-failures = 50

[auth.wfc]
path = "{auth}"
peers = ["alice", "bob"]

[generation]
max-examples = {max_examples}

[phases.stateful]
max-steps = 20

[checks.positive_data_acceptance]
expected-statuses = {accepted}

# Rules no JSON Schema can state, for which a schema-valid request may still be a 400:
# a cursor is opaque (only one the server made is valid), `since` must be in the past (the clock
# decides), a cron expression must parse and fire no more often than the tenant's minimum interval,
# a schedule's qualifier must name a version or alias its function has,
# requirements and dependencies must be valid for the function's runtime, a webhook endpoint's
# host must resolve to a public address (DNS decides), run_at may be at most JOB_MAX_DELAY_S ahead,
# a version's egress, env and secrets must pass the egress policy's rules and name secrets the
# tenant has, an alias's canary (additional_version) must differ from its version, and a route's path
# must be a pattern, its qualifier name a version or alias the function has, its auth name a secret the
# tenant has, its origins be origins and its body cap fit the quota, and a function's flow control must
# hold together (a concurrency_key in the path subset, a per-key limit only with a key, a reservation
# within the function's ceiling and leaving room in the tenant's cap).
[[operations]]
include-operation-id = {semantic}
checks.positive_data_acceptance.expected-statuses = {accepted_or_400}

"""
SEMANTIC = [
    "jobs_list",
    "dead_letters_list",
    "stats_retrieve",
    "schedules_create",
    "schedules_update",
    "functions_create",
    "functions_update",
    "functions_versions_create",
    "webhooks_create",
    "webhooks_update",
    "jobs_submit",
    "jobs_batch",
    "functions_invoke",
    "functions_aliases_set",
    "secrets_list",
    "routes_create",
    "routes_update",
]


def _call(url: str, method: str, path: str, key: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def _seed(url: str, key: str, tag: str) -> None:
    """One of everything, so the run has objects to read, change and probe across tenants."""
    code = "def main(*args):\n    return len(args)\n"
    _call(url, "POST", "/api/v1/jobs", key, {"runtime": "python", "code": code, "args": [1]})
    _call(url, "POST", "/api/v1/functions", key, {"name": f"{tag}-fn", "runtime": "python", "code": code})
    _call(url, "PUT", f"/api/v1/functions/{tag}-fn/aliases/live", key, {"version": 1})
    _call(
        url,
        "POST",
        "/api/v1/schedules",
        key,
        {"name": f"{tag}-nightly", "cron": "0 2 * * *", "function": f"{tag}-fn", "args": [tag]},
    )
    _call(url, "POST", f"/api/v1/functions/{tag}-fn/routes", key, {"path": "/hook", "mode": "async"})


@pytest.fixture
def server(alice, bob):
    for persona in (alice, bob):  # the run submits and writes a lot: the rate limits are not what is tested
        quota = persona.tenant.quota
        quota.submissions_per_minute = quota.writes_per_minute = quota.deploys_per_minute = 100_000
        quota.max_versions_per_function = 100_000
        quota.save()
    stack = Stack(settings.REDIS_URL)
    try:
        stack.env["WAIT_MAX_S"] = "1"  # ?wait holds an answer this long at most: no worker runs here
        url = stack.start_web()
        _seed(url, alice.key, "alice")
        _seed(url, bob.key, "bob")
        yield url, stack
    finally:
        stack.stop()


def test_the_server_keeps_every_promise_of_its_schema(server, alice, bob, tmp_path):
    url, stack = server
    auth = tmp_path / "auth.json"
    auth.write_text(
        json.dumps(
            {
                "auth": [
                    {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {key}"}]}
                    for name, key in (("alice", alice.key), ("bob", bob.key))
                ]
            }
        )
    )
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        CONFIG.format(
            seed=SEED,
            auth=auth,
            max_examples=MAX_EXAMPLES,
            accepted=json.dumps(ACCEPTED),
            semantic=json.dumps(SEMANTIC),
            accepted_or_400=json.dumps([*ACCEPTED, "400"]),
        )
    )
    started = time.monotonic()
    run = subprocess.run(
        [
            str(ROOT / ".venv/bin/schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{url}/api/schema/?format=json",
            "--checks",
            "all",
            "--max-time",
            str(TIME_BUDGET_S),
            "--report",
            "ndjson",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIME_BUDGET_S + 60,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
    )
    elapsed = time.monotonic() - started
    (ROOT / "var" / "schemathesis.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, (
        f"schemathesis failed after {elapsed:.0f} s (whole report: var/schemathesis.txt)\n"
        f"{run.stdout[-20_000:]}\n{run.stderr[-5_000:]}\n--- server errors:\n{_server_errors(url)}"
    )


def _server_errors(url: str) -> str:
    """The web's log lines at level error (a 500's traceback among them)."""
    log = ROOT / "var" / f"web-{url.rsplit(':', 1)[1]}.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(
        line for line in lines if '"level": "info"' not in line and '"level": "warning"' not in line
    )[-20_000:]
