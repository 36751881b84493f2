"""The API and the pages answer exactly as recorded: status, the headers that matter and the body,
byte for byte once generated values (ids, times, tokens) are replaced by placeholders.

The recording (golden/contract.json) was made before the jobs app was split into modules, and
re-recorded for functions and for time and events, whose only differences were additions (the job
body's function, version, alias and callback_url keys, the Functions, Schedules and Webhooks links
in the navigation, the scheduled status in filters and messages, Node's version 22), and for the
favicon, whose only difference is its ``<link rel="icon">`` in every page's head, and for the
job body's ``trigger`` (an addition: who or what asked for the job), and for the run console (issue
23: the jobs list's what/trigger/duration columns, the job page's status strip, progress and details;
only those five pages changed), and for issue 24's dashboard and budget (additions only: the new-job
page's network and configuration fieldset, usage's ``egress`` and ``limits.max_egress_bytes_month``),
and for issue 25's flow control (additions only: the job body's ``priority`` and ``concurrency_key``,
the detail's ``waiting_reason``, the job page's priority and what it waits for), and for issue 28's
placement (additions only: the job body's ``pool``, ``placement`` and ``placed_by``, the job page's pool).
Regenerate it only for an intended change: ``CONTRACT_RECORD=1 make test ARGS=jobs/tests/test_contract.py``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_issue, membership_set, user_get_or_create
from jobs.models import Attempt, Job, LogLine, Status

pytestmark = pytest.mark.django_db(transaction=True)

GOLDEN = Path(__file__).parent / "golden" / "contract.json"
HEADERS = ("Content-Type", "Retry-After", "WWW-Authenticate", "Location", "Cache-Control", "Allow")
ADD = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}

_VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "<time>"),
    (
        re.compile(r"-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
        "-<uuid-rest>",
    ),  # an id shown as short + rest
    (re.compile(r"(?<![0-9a-zA-Z])[0-9a-f]{8}(?![0-9a-zA-Z])"), "<short-id>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<hms>"),
    (re.compile(r'(/app/keys/|name="(?:membership|invitation)" value=")\d+'), r"\1<pk>"),  # row ids
    (re.compile(r"cursor=[A-Za-z0-9%_=-]+"), "cursor=<cursor>"),
    (re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"'), 'name="csrfmiddlewaretoken" value="<csrf>"'),
    (re.compile(r"lsk_[a-z0-9]{8}(_[A-Za-z0-9_-]{43})?"), "<key>"),
    (re.compile(r'"(retry_after|Retry-After)": ?"?\d+"?'), r'"\1": <n>'),
    (re.compile(r"(resets |in )\d+ s"), r"\1<n> s"),
    (re.compile(r"aria-valuenow=\"[0-9.]+\""), 'aria-valuenow="<n>"'),
]


def normalise(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def record(response) -> dict:
    headers = {name: normalise(response[name]) for name in HEADERS if response.has_header(name)}
    if "Retry-After" in headers:
        headers["Retry-After"] = "<n>"
    if "Allow" in headers:  # DRF builds it from a set
        headers["Allow"] = ", ".join(sorted(headers["Allow"].split(", ")))
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return {
        "status": response.status_code,
        "headers": headers,
        "body": normalise(body.decode("utf-8", "replace")),
    }


def api(persona_key: str | None = None, **extra) -> Client:
    client = Client(**extra)
    if persona_key:
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {persona_key}"
    return client


def post(client: Client, path: str, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type=extra.pop("content_type", "application/json"), **extra)


def scenario(alice, bob) -> dict:
    """A fixed corpus of requests, valid and not, in this order (each step sees the jobs, keys and
    tokens the steps before it left); -> name: recorded response."""
    a = api(alice.key)
    out = submits(a)
    job_id = out["submit 202"].json()["id"]
    out.update(batches(a))
    out.update(reads(a, bob, job_id))
    out.update(actions(a, job_id))
    out.update(account_reads(a))
    out.update(refusals(a, alice))
    out.update(pages(alice, bob, job_id))
    return {normalise(name): record(response) for name, response in out.items()}


def submits(a: Client) -> dict:
    out = {"submit 202": post(a, "/api/v1/jobs", ADD)}
    bad_bodies = {
        "unknown runtime": {"runtime": "ruby", "code": "x"},
        "missing runtime": {"code": "def main(): pass"},
        "blank code": {"runtime": "python", "code": "   "},
        "args not a list": {"runtime": "python", "code": "x", "args": {"a": 1}},
        "unknown field": {"runtime": "python", "code": "x", "colour": "red"},
        "string timeout": {"runtime": "python", "code": "x", "timeout_ms": "5000"},
        "timeout over cap": {"runtime": "python", "code": "x", "timeout_ms": 90000},
        "memory over cap": {"runtime": "python", "code": "x", "memory_mb": 4096},
        "bad handler": {"runtime": "python", "code": "x", "handler": "1x"},
        "not an object": [1, 2],
        "code over cap": {"runtime": "python", "code": "x" * (256 * 1024 + 1)},
    }
    for name, body in bad_bodies.items():
        out[f"submit {name}"] = post(a, "/api/v1/jobs", body)
    out["submit malformed json"] = post(a, "/api/v1/jobs", "{nope")
    out["submit form encoded"] = a.post("/api/v1/jobs", {"runtime": "python"})
    out["submit lone surrogate"] = post(a, "/api/v1/jobs", '{"runtime": "python", "code": "\\ud800"}')
    for wait in ("abc", "-1", "31"):
        out[f"submit wait={wait}"] = post(a, f"/api/v1/jobs?wait={wait}", ADD)
    out["submit idempotent first"] = post(a, "/api/v1/jobs", ADD, HTTP_IDEMPOTENCY_KEY="k-1")
    out["submit idempotent replay"] = post(a, "/api/v1/jobs", ADD, HTTP_IDEMPOTENCY_KEY="k-1")
    out["submit idempotent conflict"] = post(
        a, "/api/v1/jobs", {**ADD, "args": [9, 9]}, HTTP_IDEMPOTENCY_KEY="k-1"
    )
    out["submit idempotency key too long"] = post(a, "/api/v1/jobs", ADD, HTTP_IDEMPOTENCY_KEY="k" * 300)
    return out


def batches(a: Client) -> dict:
    return {
        "batch ok": post(a, "/api/v1/jobs/batch", {"jobs": [ADD, ADD]}),
        "batch bad item": post(
            a, "/api/v1/jobs/batch", {"jobs": [ADD, {"runtime": "python", "code": "x", "timeout_ms": 90000}]}
        ),
        "batch empty": post(a, "/api/v1/jobs/batch", {"jobs": []}),
    }


def reads(a: Client, bob, job_id: str) -> dict:
    out = {}
    for query in (
        "",
        "?status=bogus",
        "?runtime=ruby",
        "?limit=0",
        "?limit=abc",
        "?cursor=garbage",
        "?status=queued,dispatched&limit=2",
    ):
        out[f"list{query}"] = a.get(f"/api/v1/jobs{query}")
    out["detail"] = a.get(f"/api/v1/jobs/{job_id}")
    out["detail malformed id"] = a.get("/api/v1/jobs/not-a-uuid")
    out["detail other tenant"] = api(bob.key).get(f"/api/v1/jobs/{job_id}")
    LogLine.objects.create(job_id=job_id, attempt=1, seq=1, stream="stdout", ts=timezone.now(), text="hello")
    for query in ("", "?after=-1", "?after=x", "?limit=99999", "?after=1"):
        out[f"logs{query}"] = a.get(f"/api/v1/jobs/{job_id}/logs{query}")
    return out


def actions(a: Client, job_id: str) -> dict:
    out = {
        "delete unfinished": a.delete(f"/api/v1/jobs/{job_id}"),
        "retry not retryable": a.post(f"/api/v1/jobs/{job_id}/retry"),
        "cancel": a.post(f"/api/v1/jobs/{job_id}/cancel"),
        "cancel finished": a.post(f"/api/v1/jobs/{job_id}/cancel"),
    }
    done = Job.objects.get(pk=job_id)
    Attempt.objects.create(
        job=done, number=1, started_at=timezone.now(), status=Status.FAILED, billed_ms=5, gb_seconds=0.000625
    )
    Job.objects.filter(pk=job_id).update(
        status=Status.DEAD, attempts=1, error={"type": "E", "message": "m", "traceback": ""}
    )
    out["dead letters"] = a.get("/api/v1/dead-letters")
    out["retry dead"] = a.post(f"/api/v1/jobs/{job_id}/retry")
    return out


def account_reads(a: Client) -> dict:
    out = {"runtimes": a.get("/api/v1/runtimes"), "usage": a.get("/api/v1/usage")}
    for query in ("?since=bad", "?since=2999-01-01T00:00:00Z", "?since=2000-01-01T00:00:00+99:00"):
        out[f"stats{query}"] = a.get(f"/api/v1/stats{query}")
    return out


def refusals(a: Client, alice) -> dict:
    out = {
        "method not allowed": a.put("/api/v1/jobs"),
        "unknown endpoint": a.get("/api/v1/nowhere"),
        "no key": api().get("/api/v1/jobs"),
        "bad scheme": api(HTTP_AUTHORIZATION="Basic xyz").get("/api/v1/jobs"),
    }
    read_key = api_key_issue(tenant=alice.tenant, name="ro", scope=ApiKey.Scope.READ, operator=True).plaintext
    out["read key writes"] = post(api(read_key), "/api/v1/jobs", ADD)
    quota = alice.tenant.quota
    quota.submissions_per_minute = 1
    quota.save()
    post(a, "/api/v1/jobs", ADD)  # the bucket's last token
    out["rate limited"] = post(a, "/api/v1/jobs", ADD)
    alice.tenant.is_suspended = True
    alice.tenant.save()
    out["suspended"] = a.get("/api/v1/jobs")
    alice.tenant.is_suspended = False
    alice.tenant.save()
    return out


def pages(alice, bob, job_id) -> dict:
    web = Client()
    web.force_login(alice.user)
    viewer = user_get_or_create(email="viv@acme.test", password="pw-viv-1")
    membership_set(tenant=alice.tenant, user=viewer, role="viewer")
    watching = Client()
    watching.force_login(viewer)
    out = {}
    for path in (
        "/app/jobs/",
        "/app/jobs/?status=dead",
        "/app/jobs/?q=zzzz",
        f"/app/jobs/{job_id}/",
        f"/app/jobs/{job_id}/?partial=1",
        f"/app/jobs/{job_id}/lines?after=0",
        f"/app/jobs/{job_id}/log.txt",
        "/app/dead-letters/",
        "/app/dead-letters/?partial=1",
        "/app/jobs/new",
        "/app/keys/",
        "/app/members/",
        "/app/invitations/",
        "/app/jobs/not-a-uuid/",
    ):
        out[f"page {path}"] = web.get(path)
    out["page viewer /app/jobs/new"] = watching.get("/app/jobs/new")
    out["page viewer /app/members/"] = watching.get("/app/members/")
    out["page new job invalid"] = web.post(
        "/app/jobs/new",
        {
            "runtime": "python",
            "handler": "main",
            "code": "",
            "args": "[",
            "timeout_ms": "x",
            "memory_mb": "128",
            "max_retries": "0",
        },
    )
    out["page other tenant job"] = Client().get(f"/app/jobs/{job_id}/")
    return out


def test_the_api_and_pages_answer_as_recorded(alice, bob):
    got = scenario(alice, bob)
    if os.environ.get("CONTRACT_RECORD") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        pytest.fail("recorded the contract; run again without CONTRACT_RECORD")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got) == sorted(want)
    different = [name for name in want if got[name] != want[name]]
    for name in different:
        print(
            f"--- {name}: status {want[name]['status']} -> {got[name]['status']}, headers "
            f"{want[name]['headers']} -> {got[name]['headers']}"
        )
        diff = difflib.unified_diff(
            want[name]["body"].splitlines(), got[name]["body"].splitlines(), lineterm="", n=1
        )
        print("\n".join(list(diff)[:40]))
    assert not different, different
