"""Configuration: every variable the settings read is documented, and bad values fail fast."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from lambdasite import env

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_variable_is_in_env_example():
    read = set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', (ROOT / "lambdasite" / "settings.py").read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - documented == set()


@pytest.mark.parametrize(
    "reader, value",
    [(env.env_int, "ten"), (env.env_bool, "maybe"), (env.env_float, "fast")],
)
def test_bad_values_fail_fast(monkeypatch, reader, value):
    monkeypatch.setenv("LAMBDASITE_X", value)
    with pytest.raises(ImproperlyConfigured, match="LAMBDASITE_X"):
        reader("LAMBDASITE_X", 1)


def test_choices_and_minimums_are_enforced(monkeypatch):
    monkeypatch.setenv("LAMBDASITE_X", "sometimes")
    with pytest.raises(ImproperlyConfigured):
        env.env_choice("LAMBDASITE_X", "tenant", ("tenant", "never"))
    monkeypatch.setenv("LAMBDASITE_X", "-1")
    with pytest.raises(ImproperlyConfigured):
        env.env_int("LAMBDASITE_X", 1, minimum=0)


@pytest.mark.system  # starts two Django processes
def test_workers_commit_asynchronously_and_the_web_does_not():
    """relax_commit_durability sets synchronous_commit=off as a connection option (pooled
    connections included); a process that does not call it keeps synchronous commits."""
    import subprocess
    import sys

    probe = (
        "import django; django.setup()\n"
        "import sys\n"
        "from jobs.worker import relax_commit_durability\n"
        "if sys.argv[1] == 'worker': relax_commit_durability()\n"
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('SHOW synchronous_commit'); print(c.fetchone()[0])\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lambdasite.settings"}
    answers = [
        subprocess.run(
            [sys.executable, "-c", probe, role], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        ).stdout.strip()
        for role in ("worker", "web")
    ]
    assert answers == ["off", "on"]


def test_egress_test_hosts_is_a_name_table_and_refused_outside_the_test_suite(monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("LAMBDASITE_X", "api.lab.test=198.18.0.2, B.lab.test=198.19.0.2,b.lab.test=198.19.0.3")
    assert env.env_hosts("LAMBDASITE_X") == {
        "api.lab.test": ["198.18.0.2"],
        "b.lab.test": ["198.19.0.2", "198.19.0.3"],
    }
    monkeypatch.setenv("LAMBDASITE_X", "api.lab.test")
    with pytest.raises(ImproperlyConfigured, match="LAMBDASITE_X"):
        env.env_hosts("LAMBDASITE_X")
    probe = "import django; django.setup()"
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "lambdasite.settings", "LAMBDASITE_TESTING": "0"}
    environ["EGRESS_TEST_HOSTS"] = "api.lab.test=198.18.0.2"
    refused = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "EGRESS_TEST_HOSTS is for the test suite only" in refused.stderr
