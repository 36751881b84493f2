"""jobs.api.handlers: submit and a job's detail as both transports call them (a Call in, a Reply
or a refusal out), without HTTP. Every check happens before anything is written."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from accounts.authentication import principal_for
from jobs.api import handlers
from jobs.models import Job
from lambdasite.exceptions import NotFound, ValidationFailed

pytestmark = pytest.mark.django_db

ADD = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}


def call(persona, data, query: str = "", headers=None):
    from lambdasite.api.contract import Call

    caller = principal_for(f"Bearer {persona.key}", "")
    return Call(caller, data, QueryDict(query), headers or {})


def test_a_submit_is_a_202_with_its_location_and_a_hold_only_when_asked(alice):
    reply = handlers.submit(call(alice, ADD))
    assert reply.status == 202 and reply.hold is None
    assert reply.headers == {"Location": f"/api/v1/jobs/{reply.body['id']}"}
    assert reply.body["status"] == "queued" and reply.body["limits"] == {"timeout_ms": 5000, "memory_mb": 128}
    waited = handlers.submit(call(alice, ADD, "wait=2.5"))
    assert waited.hold.seconds == 2.5
    assert Job.objects.filter(tenant=alice.tenant).count() == 2


def test_refusals_come_in_order_and_write_nothing(alice):
    cases = [
        (call(alice, {**ADD, "runtime": "ruby"}, "wait=abc"), "wait: "),  # the query first
        (call(alice, {**ADD, "colour": "red"}, headers={"idempotency-key": ""}), "colour: unknown field"),
        (call(alice, ADD, headers={"idempotency-key": "k" * 256}), "Idempotency-Key: "),
        (call(alice, {**ADD, "timeout_ms": 10**8}), "timeout_ms: 100000000 is over this tenant's cap"),
        (call(alice, None), "No data provided"),  # a body of null, as DRF words it
    ]
    for refused_call, message in cases:
        with pytest.raises(ValidationFailed) as refused:
            handlers.submit(refused_call)
        assert message in refused.value.message
    assert not Job.objects.exists()


def test_an_idempotent_replay_is_the_first_jobs_detail(alice):
    headers = {"idempotency-key": "order-1"}
    first = handlers.submit(call(alice, ADD, headers=headers))
    replay = handlers.submit(call(alice, ADD, "wait=5", headers=headers))
    assert replay.status == 200 and replay.hold is None and replay.body["id"] == first.body["id"]
    assert replay.body["attempt_history"] == [] and Job.objects.count() == 1


def test_a_jobs_detail_is_its_tenants_only(alice, bob):
    job_id = handlers.submit(call(alice, ADD)).body["id"]
    mine = handlers.detail(call(alice, {}), job_id)
    assert mine.status == 200 and mine.body["id"] == job_id and mine.body["args"] == [2, 3]
    for persona, wanted in ((bob, job_id), (alice, "00000000-0000-0000-0000-000000000000")):
        with pytest.raises(NotFound, match="job not found"):
            handlers.detail(call(persona, {}), wanted)
