"""The durable context of the Python runner (``lambdasite_runner/durable.py``) on its own: journal
replay, the determinism check, the records it sends and what it does with the host's answers. The
host's side of the channel is played by a thread on a socket pair; the process's exit is an exception."""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[1] / "images" / "runner"
sys.path.insert(0, str(RUNNER))
from lambdasite_runner import durable  # noqa: E402

sys.path.remove(str(RUNNER))


class Exited(Exception):
    def __init__(self, payload: str) -> None:
        super().__init__(payload)
        self.payload = json.loads(payload)


def _report(payload: str):
    raise Exited(payload)


class Host:
    """Answers each record the context sends with the next of ``answers``; keeps what it was sent."""

    def __init__(self, monkeypatch, answers: list[dict]) -> None:
        ours, theirs = socket.socketpair()
        self.sock, self.theirs = ours, theirs
        monkeypatch.setattr(durable, "CTL_FD", theirs.fileno())
        self.answers = list(answers)
        self.records: list[dict] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self) -> None:
        try:
            while self.answers:
                (size,) = struct.unpack(">I", self._read(4))
                self.records.append(json.loads(self._read(size)))
                answer = json.dumps(self.answers.pop(0)).encode()
                self.sock.sendall(struct.pack(">I", len(answer)) + answer)
        except EOFError:
            pass


def context(journal=(), run="run-1"):
    return durable.Context({"run": run, "journal": list(journal)}, _report)


def entry(seq, name, kind="step", status="succeeded", result=None, error=None, attempts=1):
    return {
        "seq": seq,
        "name": name,
        "kind": kind,
        "status": status,
        "result": result,
        "error": error,
        "attempts": attempts,
    }


def test_it_replays_recorded_steps_without_running_them():
    ctx = context([entry(1, "charge", result={"id": "ch_1"}), entry(2, "nap", kind="sleep")])
    ran = []
    assert ctx.step("charge", lambda: ran.append(1)) == {"id": "ch_1"}
    assert ctx.sleep("nap", 60) is None
    assert ran == []


def test_a_recorded_failure_is_raised_again():
    error = {"type": "ValueError", "message": "card declined", "traceback": ""}
    ctx = context([entry(1, "charge", status="failed", error=error)])
    with pytest.raises(durable.StepFailed) as raised:
        ctx.step("charge", lambda: 1 / 0)
    assert raised.value.error == error and raised.value.step == "charge"


def test_a_new_step_runs_once_and_is_recorded_before_the_code_goes_on(monkeypatch):
    host = Host(monkeypatch, [{"ok": True}])
    ctx = context([entry(1, "first", result=1)])
    assert ctx.step("first", lambda: 0) == 1
    seen = []
    value = ctx.step("second", lambda: seen.append(ctx.step_id) or (2, "two"))
    assert value == [2, "two"]  # the recorded JSON, as a replay returns it
    assert seen == ["run-1:second"] and ctx.step_id is None
    (record,) = host.records
    assert (record["seq"], record["name"], record["kind"], record["ok"]) == (2, "second", "step", True)
    assert record["result"] == [2, "two"] and record["attempt"] == 1


def test_a_different_step_at_a_recorded_position_is_a_determinism_error():
    ctx = context([entry(1, "charge"), entry(2, "reserve")])
    ctx.step("charge", lambda: None)
    with pytest.raises(Exited) as exited:
        ctx.step("ship", lambda: None)
    error = exited.value.payload["error"]
    assert error["type"] == "DeterminismError"
    assert "'reserve' (step)" in error["message"] and "'ship' (step)" in error["message"]


def test_a_different_kind_at_a_recorded_position_is_a_determinism_error():
    ctx = context([entry(1, "wait", kind="sleep")])
    with pytest.raises(Exited) as exited:
        ctx.step("wait", lambda: None)
    assert exited.value.payload["error"]["type"] == "DeterminismError"


def test_step_names_are_unique_and_bounded():
    ctx = context([entry(1, "a")])
    ctx.step("a", lambda: None)
    with pytest.raises(durable.StepNameError):
        ctx.step("a", lambda: None)
    with pytest.raises(durable.StepNameError):
        ctx.step("", lambda: None)
    with pytest.raises(durable.StepNameError):
        ctx.step("x" * 201, lambda: None)


def test_a_failing_step_with_retries_left_suspends_the_run(monkeypatch):
    host = Host(monkeypatch, [{"suspend": True}])
    ctx = context()
    with pytest.raises(Exited) as exited:
        ctx.step("ship", lambda: 1 / 0, retries=2, backoff_s=0.5)
    assert exited.value.payload == {"ok": True, "result": None, "suspended": True}
    (record,) = host.records
    assert record["ok"] is False and record["error"]["type"] == "ZeroDivisionError"
    assert (record["retries"], record["backoff_s"], record["attempt"]) == (2, 0.5, 1)


def test_a_retrying_step_runs_its_next_try(monkeypatch):
    host = Host(monkeypatch, [{"ok": True}])
    ctx = context([entry(1, "ship", status="retrying", attempts=2)])
    tries = []
    assert ctx.step("ship", lambda: tries.append(ctx.attempt) or "shipped", retries=3) == "shipped"
    assert tries == [3] and host.records[0]["attempt"] == 3


def test_a_wait_without_an_outcome_suspends_and_one_with_it_returns(monkeypatch):
    host = Host(monkeypatch, [{"outcome": {"status": "succeeded", "result": {"ok": 1}}}, {"suspend": True}])
    ctx = context()
    assert ctx.wait_for_event("approval", "approved", key="order-1", timeout_s=30) == {"ok": 1}
    with pytest.raises(Exited) as exited:
        ctx.sleep("nap", 5)
    assert exited.value.payload["suspended"] is True
    first, second = host.records
    assert first == {
        "event": "approved",
        "key": "order-1",
        "timeout_s": 30,
        "seq": 1,
        "name": "approval",
        "kind": "event",
    }
    assert (second["kind"], second["seconds"]) == ("sleep", 5)


def test_failed_children_raise_child_failed_with_the_partial_results():
    error = {"type": "ChildFailed", "message": "1 of 3", "errors": [None, {"type": "ValueError"}, None]}
    ctx = context([entry(1, "fan", kind="map", status="failed", result=[1, None, 9], error=error)])
    with pytest.raises(durable.ChildFailed) as raised:
        ctx.map("fan", "square", [1, 2, 3])
    assert raised.value.results == [1, None, 9]
    assert raised.value.errors == [None, {"type": "ValueError"}, None]


def test_a_fatal_answer_ends_the_run_with_its_error(monkeypatch):
    host = Host(
        monkeypatch, [{"fatal": {"type": "StepLimitExceeded", "message": "a run may record 2 steps"}}]
    )
    ctx = context()
    with pytest.raises(Exited) as exited:
        ctx.step("third", lambda: 3)
    assert exited.value.payload["error"]["type"] == "StepLimitExceeded"
    assert host.records[0]["name"] == "third"


def test_steps_do_not_nest(monkeypatch):
    host = Host(monkeypatch, [{"ok": True}])
    ctx = context()
    with pytest.raises(durable.StepFailed):
        ctx.step("outer", lambda: ctx.step("inner", lambda: 1))
    assert host.records[0]["error"]["type"] == "RuntimeError"
    assert "steps do not nest" in host.records[0]["error"]["message"]
