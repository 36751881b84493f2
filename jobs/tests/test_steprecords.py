"""The host's reading of a durable run's records (jobs.steprecords): what a record may say, where in
the journal it may go, the limits, and a failed step's backoff. No database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from jobs.steprecords import Journal, Refused, parse, retry_at, sleep_until

NOW = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)


def record(**fields) -> bytes:
    return json.dumps(
        {"seq": 1, "name": "charge", "kind": "step", "ok": True, "result": 1, **fields}
    ).encode()


def refused(payload: bytes) -> Refused:
    with pytest.raises(Refused) as raised:
        parse(payload)
    return raised.value


def test_it_reads_a_step_and_its_retry_policy():
    step = parse(record(result={"id": "ch_1"}, retries=3, backoff_s=0.5, attempt=2, ms=12.5))
    assert (step.seq, step.name, step.kind, step.ok, step.result) == (
        1,
        "charge",
        "step",
        True,
        {"id": "ch_1"},
    )
    assert step.terms == {"retries": 3, "backoff_s": 0.5} and step.attempt == 2 and step.ms == 12.5
    assert step.size == len(record(result={"id": "ch_1"}, retries=3, backoff_s=0.5, attempt=2, ms=12.5))


def test_a_failed_step_keeps_only_its_error_fields():
    step = parse(record(ok=False, result=None, error={"type": "E", "message": "m", "traceback": "t", "x": 1}))
    assert step.error == {"type": "E", "message": "m", "traceback": "t"} and step.result is None


@pytest.mark.parametrize(
    "payload, type_",
    [
        (b"", "RecordLimitExceeded"),
        (b"not json", "RecordRefused"),
        (b"[1]", "RecordRefused"),
        (record(seq=0), "RecordRefused"),
        (record(seq=True), "RecordRefused"),
        (record(name=""), "RecordRefused"),
        (record(name="x" * 201), "RecordRefused"),
        (record(kind="exec"), "RecordRefused"),
        (record(ok="yes"), "RecordRefused"),
        (record(retries=101), "RecordRefused"),
        (record(backoff_s=-1), "RecordRefused"),
        (record(ok=False), "RecordRefused"),  # a failure without its error
    ],
)
def test_it_refuses_what_breaks_a_rule(payload, type_):
    assert refused(payload).type == type_


def test_it_reads_each_kind_of_wait():
    sleep = parse(json.dumps({"seq": 2, "name": "nap", "kind": "sleep", "seconds": 30}).encode())
    assert sleep.terms == {"seconds": 30.0}
    until = parse(
        json.dumps({"seq": 2, "name": "nap", "kind": "sleep", "until": "2027-01-04T09:00:00+01:00"}).encode()
    )
    assert until.terms["until"] == NOW
    call = {
        "seq": 3,
        "name": "fan",
        "kind": "map",
        "function": "square",
        "items": [[1], [2]],
        "qualifier": None,
    }
    assert parse(json.dumps(call).encode()).terms == {
        "function": "square",
        "qualifier": None,
        "calls": [[1], [2]],
    }
    invoke = {
        "seq": 3,
        "name": "one",
        "kind": "invoke",
        "function": "square",
        "args": [4],
        "qualifier": "prod",
    }
    assert parse(json.dumps(invoke).encode()).terms["calls"] == [[4]]
    event = {"seq": 4, "name": "ok", "kind": "event", "event": "approval", "key": "order-1", "timeout_s": 60}
    assert parse(json.dumps(event).encode()).terms == {
        "event": "approval",
        "key": "order-1",
        "timeout_s": 60.0,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "sleep", "seconds": -1},
        {"kind": "sleep", "until": "tomorrow"},
        {"kind": "sleep", "until": "2027-01-04T09:00:00"},  # no offset
        {"kind": "map", "function": "square", "items": [1, 2]},  # items are argument lists
        {"kind": "invoke", "function": "", "args": []},
        {"kind": "event", "event": "bad name", "key": ""},
        {"kind": "event", "event": "ok", "key": 5},
    ],
)
def test_it_refuses_malformed_waits(fields):
    assert refused(json.dumps({"seq": 1, "name": "w", **fields}).encode()).type == "RecordRefused"


def journal(*steps, open_seq=None) -> Journal:
    names = {seq: (name, kind) for seq, name, kind in steps}
    return Journal(
        names=names,
        count=len(steps),
        bytes=10 * len(steps),
        sizes=dict.fromkeys(names, 10),
        open_seq=open_seq,
    )


def test_a_new_record_takes_the_next_position():
    state = journal((1, "charge", "step"))
    assert state.place(parse(record(seq=2, name="reserve"))) is False


def test_the_open_step_may_be_recorded_again_as_itself_only():
    state = journal((1, "charge", "step"), (2, "ship", "step"), open_seq=2)
    assert state.place(parse(record(seq=2, name="ship", attempt=2))) is True
    with pytest.raises(Refused) as raised:
        state.place(parse(record(seq=2, name="refund")))
    assert raised.value.type == "DeterminismError"
    with pytest.raises(Refused):  # nothing new while the open step is unresolved
        state.place(parse(record(seq=3, name="later")))


def test_gaps_and_reused_names_are_refused():
    state = journal((1, "charge", "step"))
    with pytest.raises(Refused):
        state.place(parse(record(seq=3, name="skip")))
    with pytest.raises(Refused) as raised:
        state.place(parse(record(seq=2, name="charge")))
    assert raised.value.type == "DeterminismError"


def test_limits_count_steps_and_recorded_bytes():
    state = journal((1, "a", "step"), (2, "b", "step"))
    new = parse(record(seq=3, name="c"))
    with pytest.raises(Refused) as raised:
        state.check_limits(new, again=False, max_steps=2, max_bytes=10_000)
    assert raised.value.type == "StepLimitExceeded"
    with pytest.raises(Refused) as raised:
        state.check_limits(new, again=False, max_steps=10, max_bytes=20 + new.size - 1)
    assert raised.value.type == "RecordLimitExceeded"
    state.check_limits(new, again=False, max_steps=3, max_bytes=20 + new.size)
    state.add(new, again=False, still_open=False)
    assert (state.count, state.bytes, state.next_seq, state.open_seq) == (3, 20 + new.size, 4, None)


def test_a_record_of_the_open_step_replaces_its_size():
    state = journal((1, "a", "step"), open_seq=1)
    again = parse(record(seq=1, name="a", attempt=2))
    state.check_limits(again, again=True, max_steps=1, max_bytes=again.size)  # 10 bytes replaced, not added
    state.add(again, again=True, still_open=False)
    assert (state.count, state.bytes, state.open_seq) == (1, again.size, None)


def test_backoff_doubles_from_its_base_and_is_capped():
    assert retry_at(NOW, attempt=1, backoff_s=0.5) == NOW + timedelta(seconds=0.5)
    assert retry_at(NOW, attempt=3, backoff_s=0.5) == NOW + timedelta(seconds=2)
    assert retry_at(NOW, attempt=60, backoff_s=1) == NOW + timedelta(days=1)


def test_a_sleep_ends_at_its_time():
    assert sleep_until(NOW, {"seconds": 90.0}) == NOW + timedelta(seconds=90)
    assert sleep_until(NOW, {"until": NOW + timedelta(hours=1)}) == NOW + timedelta(hours=1)
