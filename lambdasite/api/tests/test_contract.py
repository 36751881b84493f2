"""lambdasite.api.contract: validation, the Idempotency-Key, the ?wait hold and the DRF adapters,
without HTTP."""

from __future__ import annotations

import asyncio

import pytest
from django.http import QueryDict
from rest_framework import serializers

from lambdasite.api.contract import (
    Call,
    Hold,
    Reply,
    held,
    idempotency_key,
    read_update_delete,
    respond,
    respond_created,
    validated,
)
from lambdasite.api.fields import StrictCharField, StrictIntegerField, StrictSerializer
from lambdasite.exceptions import ValidationFailed


class Point(StrictSerializer):
    name = StrictCharField(max_length=5)
    x = StrictIntegerField(min_value=0)


def call(headers=None) -> Call:
    return Call(caller=None, data={}, query=QueryDict(""), headers=headers or {})


def test_validated_gives_the_data_or_one_validation_error_naming_the_first_field():
    assert validated(Point, {"name": "a", "x": 1}) == {"name": "a", "x": 1}
    with pytest.raises(ValidationFailed) as refused:
        validated(Point, {"name": "toolong", "x": -1, "z": 0})
    error = refused.value
    assert error.status == 400 and error.code == "validation_error"
    assert error.message == "z: unknown field"
    with pytest.raises(ValidationFailed) as refused:
        validated(Point, {"name": "toolong", "x": -1})
    assert refused.value.message.startswith("name: ")
    assert set(refused.value.details["fields"]) == {"name", "x"}
    with pytest.raises(ValidationFailed, match="expected a JSON object"):
        validated(Point, [1, 2])


def test_the_idempotency_key_is_optional_and_1_to_255_characters():
    assert idempotency_key(call()) is None
    assert idempotency_key(call({"idempotency-key": "order-1"})) == "order-1"
    assert idempotency_key(call({"idempotency-key": "k" * 255})) == "k" * 255
    for bad in ("", "k" * 256):
        with pytest.raises(ValidationFailed) as refused:
            idempotency_key(call({"idempotency-key": bad}))
        assert refused.value.details == {"fields": {"Idempotency-Key": ["1 to 255 characters"]}}


class Waits:
    """A hold's two ends, recording how they were called."""

    def __init__(self, finished, body=None) -> None:
        self.outcome, self.body, self.asked, self.read_on = finished, body, [], []

    async def finished(self, seconds):
        self.asked.append(seconds)
        return self.outcome

    def read(self):
        return self.body


def hold_reply(waits: Waits, seconds: float = 5.0) -> Reply:
    hold = Hold(seconds=seconds, finished=waits.finished, read=waits.read)
    return Reply(202, {"id": "j"}, {"Location": "/api/v1/jobs/j"}, hold=hold)


async def run_sync(fn):
    return fn()


def test_a_reply_without_a_hold_or_a_job_not_finished_in_time_is_sent_as_it_is():
    plain = Reply(202, {"id": "j"})
    assert asyncio.run(held(plain, run_sync)) is plain
    waits = Waits(False)
    reply = hold_reply(waits)
    assert asyncio.run(held(reply, run_sync)) is reply and waits.asked == [5.0]


def test_a_finished_job_replaces_the_202_with_its_body_and_keeps_the_headers(settings):
    settings.WAIT_MAX_S = 30
    published = Waits(b'{"id":"j","status":"succeeded"}')
    done = asyncio.run(held(hold_reply(published, seconds=99), run_sync))
    assert (done.status, done.body, done.headers) == (200, published.outcome, {"Location": "/api/v1/jobs/j"})
    assert published.asked == [30]  # never longer than WAIT_MAX_S
    read = Waits(True, body={"id": "j", "status": "failed"})
    assert asyncio.run(held(hold_reply(read), run_sync)).body == {"id": "j", "status": "failed"}
    deleted = Waits(True, body=None)  # finished, then deleted before it was read
    reply = hold_reply(deleted)
    assert asyncio.run(held(reply, run_sync)) is reply


class Request:
    def __init__(self, method, data=None) -> None:
        self.method, self.data = method, data


def test_read_update_delete_answers_each_method():
    changed, deleted = [], []

    def answer(method, data=None):
        return read_update_delete(
            Request(method, data),
            {"name": "p"},
            render=lambda found: {"shown": found},
            update=lambda found, fields: changed.append(fields) or {**found, **fields},
            delete=deleted.append,
            changes=Point,
        )

    assert answer("GET").data == {"shown": {"name": "p"}} and not changed and not deleted
    assert answer("PATCH", {"name": "q", "x": 2}).data == {"shown": {"name": "q", "x": 2}}
    with pytest.raises(ValidationFailed):
        answer("PATCH", {"x": "2"})
    assert changed == [{"name": "q", "x": 2}]
    response = answer("DELETE")
    assert response.status_code == 204 and deleted == [{"name": "p"}]


def test_the_drf_adapters_keep_status_headers_and_the_reply():
    reply = Reply(202, {"id": "j"}, {"Location": "/x"})
    response = respond(reply)
    assert (response.status_code, response.data, response["Location"]) == (202, {"id": "j"}, "/x")
    assert response.reply is reply
    created = respond_created({"links": {"self": "/api/v1/things/1"}})
    assert created.status_code == 201 and created["Location"] == "/api/v1/things/1"


def test_a_strict_serializer_refuses_what_is_not_its_type():
    for data, field in (
        ({"name": 5, "x": 1}, "name"),
        ({"name": "a", "x": True}, "x"),
        ({"name": "a", "x": "1"}, "x"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            validated(Point, data)
        assert list(refused.value.details["fields"]) == [field]
    assert isinstance(Point().fields["x"], serializers.IntegerField)
