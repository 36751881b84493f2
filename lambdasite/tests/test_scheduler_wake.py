"""The scheduler's wait between passes wakes when a job placed with overflow pools has waited its
after_wait_s, runs the overflow pass then, and ends at the next pass (the pass and the due time are
stubbed here: jobs/tests/test_overflow.py and bench/placement.py (b) test them for real)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.utils import timezone

from lambdasite.management.commands import scheduler


def test_it_wakes_for_the_next_overflow_and_returns_at_the_next_pass(monkeypatch):
    runs: list[float] = []
    due = [timezone.now() + timedelta(seconds=0.2)]

    def next_due(*, now):
        return due[0] if due[0] > now else None

    def overflow_pass(*, now):
        runs.append(time.monotonic())
        return {"overflowed": 1, "replaced": 0}

    monkeypatch.setattr(scheduler, "next_due", next_due)
    monkeypatch.setattr(scheduler, "overflow_pass", overflow_pass)
    started = time.monotonic()
    scheduler._until_next_pass(threading.Event(), started + 1.5)
    ended = time.monotonic()
    assert len(runs) == 1  # once, at the job's moment, not spinning after it
    assert 0.15 <= runs[0] - started < 1.5  # at its moment: not before, and before the pass
    assert ended - started >= 1.5  # then waited for the pass


def test_a_stop_ends_the_wait_at_once(monkeypatch):
    monkeypatch.setattr(scheduler, "next_due", lambda *, now: None)
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    scheduler._until_next_pass(stop, started + 30)
    assert time.monotonic() - started < 1
