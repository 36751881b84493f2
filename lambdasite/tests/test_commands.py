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
