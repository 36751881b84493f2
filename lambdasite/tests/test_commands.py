"""The wiring layer's commands: ``manage.py worker`` and ``manage.py scheduler`` are found in
``lambdasite/management`` (they use several apps), and one scheduler pass runs every step."""

from __future__ import annotations

import logging
import signal

import pytest
from django.core.management import call_command, get_commands

from jobs import metrics


def test_the_commands_that_wire_several_apps_are_the_wiring_layers():
    commands = get_commands()
    assert commands["worker"] == commands["scheduler"] == "lambdasite"


@pytest.mark.django_db(transaction=True)  # the command closes old connections between passes
def test_one_scheduler_pass_reconciles_ticks_purges_and_beats(monkeypatch, settings, caplog):
    settings.WORKER_ASYNC_COMMIT = False  # (it changes how this process's connections open)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # pytest keeps its own handlers
    with caplog.at_level(logging.INFO, logger="lambdasite.scheduler"):
        call_command("scheduler", "--once")
    assert "reconcile pass failed" not in caplog.text
    assert metrics.reconciler_age_s() is not None


def test_a_worker_collects_unused_layers_once_per_interval_not_on_every_beat(monkeypatch, settings):
    """The heartbeat thread beats every WORKER_HEARTBEAT_S and collects dependency layers on its
    first beat and then once per LAYER_GC_INTERVAL_S (it used to collect on every beat)."""
    from lambdasite.management.commands import worker

    settings.WORKER_HEARTBEAT_S, settings.LAYER_GC_INTERVAL_S = 5.0, 300.0
    collected, now = [], [1000.0]

    class Stop:  # 200 beats, then stop; each wait is one heartbeat of the fake clock
        beats = 0

        def wait(self, seconds):
            now[0] += seconds
            self.beats += 1
            return self.beats >= 200

    monkeypatch.setattr("functions.services.layers.layers_collect", lambda client: collected.append(now[0]))
    monkeypatch.setattr(worker.metrics, "worker_beat", lambda **kwargs: None)
    worker._beat("w", "builds", pool=type("Pool", (), {"client": None})(), stop=Stop(), clock=lambda: now[0])
    # 200 beats of 5 s = 1000 s: at 1000, then after more than 300 s each time
    assert collected == [1000.0, 1305.0, 1610.0, 1915.0]
