"""Operators' commands of the jobs app."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def test_sandbox_check_reports_engine_images_and_cells(docker_client, capsys):
    call_command("sandbox_check", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["engine"]["ok"] is True
    assert all(image["present"] for image in report["images"].values())
    assert "orphans" in report["cells"]
