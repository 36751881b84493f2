"""The job page's Network pane (what the job may reach and is given, then its connections) and what
its attempt history says of each attempt's secrets, masked values and egress; through Django's test
client on PostgreSQL and Redis, no Docker (attempts are ended with a RunResult built here)."""

from __future__ import annotations

import html
import re
import time

import pytest

import sandbox
from jobs.services.lifecycle import job_claim, job_finish
from jobs.services.submit import JobSpec, job_submit
from vault.services import Actor, secret_put

from .pages import signed_in

pytestmark = pytest.mark.django_db
CODE = "def main():\n    return 1\n"


def submit(persona, **reach):
    spec = JobSpec(runtime="python", code=CODE, **reach)
    return job_submit(tenant=persona.tenant, api_key=persona.api_key, spec=spec)[0]


def finish(job, *connections, **result):
    _, attempt = job_claim(job_id=job.id, worker="w")
    ran = sandbox.RunResult(status="succeeded", duration_ms=3.0, connections=connections, **result)
    job_finish(job_id=job.id, attempt_number=attempt.number, result=ran, log_lines=0)


def text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def pane(page: str) -> str:
    found = re.search(r'<div id="job-network".*?</details>', page, re.S)
    assert found, "no Network pane"
    return found.group(0)


def test_the_pane_says_the_policy_and_lists_every_connection(alice):
    secret_put(
        tenant=alice.tenant, name="stripe", value="sk_live_secret", actor=Actor(label="o", is_owner=True)
    )
    job = submit(alice, egress=["api.stripe.com:443"], env={"MODE": "live"}, secrets={"STRIPE_KEY": "stripe"})
    allowed = sandbox.Connection(
        host="api.stripe.com", port=443, address="203.0.113.7", verdict="allowed",
        bytes_sent=2048, bytes_received=4096, started_at=time.time(), duration_ms=84.0,
    )  # fmt: skip
    denied = sandbox.Connection(
        host="169.254.169.254", port=80, verdict="denied", reason="link-local address", started_at=time.time()
    )
    finish(job, allowed, denied, masked=2, secret_revisions=(("stripe", 1),))
    page = signed_in(alice.user).get(f"/app/jobs/{job.id}/").content.decode()
    network = pane(page)
    assert 'id="job-network-box" open' in page  # a job with egress: open
    said = text(network)
    assert "Egress only api.stripe.com:443" in said
    assert "STRIPE_KEY ← secret stripe" in said and "MODE=live" in said
    assert "sk_live_secret" not in page
    rows = re.findall(r"<tr>.*?</tr>", network.split("<tbody>")[1], re.S)
    assert [text(r) for r in rows] == [
        "api.stripe.com:443 203.0.113.7 allowed 2.0 KB 4.0 KB 84 ms",
        "169.254.169.254:80 — denied link-local address 0 bytes 0 bytes 0.0 ms",
    ]
    assert 'data-label="Verdict"' in rows[0]
    assert "6.0 KB sent and received through egress" in said
    details = text(re.search(r'<div id="job-details".*?</div>\s*</details>', page, re.S).group(0))
    assert (
        "secrets stripe revision 1 · 2 secret values masked in its output · 6.0 KB through egress" in details
    )


def test_empty_states_say_why_there_is_nothing(alice):
    web = signed_in(alice.user)
    offline = submit(alice)
    finish(offline)
    page = web.get(f"/app/jobs/{offline.id}/").content.decode()
    assert 'id="job-network-box" open' not in page  # egress none: folded
    assert "This job has no network (egress: none)." in text(pane(page))
    waiting = submit(alice, egress=["api.example.com:443"])
    assert "No connections yet" in text(pane(web.get(f"/app/jobs/{waiting.id}/").content.decode()))
    finish(waiting)
    assert "No connections." in text(pane(web.get(f"/app/jobs/{waiting.id}/").content.decode()))


def test_the_pane_is_a_live_region_of_its_own(alice):
    job = submit(alice, egress="none")
    finish(job, sandbox.Connection(host="example.com", port=443, verdict="denied", reason="egress is none"))
    part = signed_in(alice.user).get(f"/app/jobs/{job.id}/?partial=1&part=network")
    assert part.status_code == 200 and part["Cache-Control"] == "no-store"
    body = part.content.decode()
    assert "<html" not in body and "example.com:443" in body and "egress is none" in body
