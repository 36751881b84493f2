"""The CLI's flow control (deploy's and limits' flags, --priority on run and invoke), in process as
test_secrets_cli does: the client's HTTP code answered by the app through Django's test client."""

from __future__ import annotations

import json

import pytest

from client.tests.test_secrets_cli import api, cli  # noqa: F401 - the fixtures
from functions.models import Function
from jobs.models import Job

pytestmark = pytest.mark.django_db


def test_deploy_sets_flow_control_and_limits_changes_it(cli, alice, tmp_path):  # noqa: F811
    alice.tenant.quota.max_concurrency = 10
    alice.tenant.quota.save()
    handler = tmp_path / "handler.py"
    handler.write_text("def main(job):\n    return job\n")
    flags = ["--max-concurrency", "5", "--reserved-concurrency", "2", "--concurrency-key", "$[0].store_id"]
    assert cli("deploy", str(handler), "--name", "sync", *flags)[0] == 0
    function = Function.objects.get()
    assert (function.max_concurrency, function.reserved_concurrency) == (5, 2)
    assert (function.concurrency_key, function.concurrency_per_key) == ("$[0].store_id", 1)
    # the next deploy keeps them unless told
    assert cli("deploy", str(handler), "--name", "sync", "--concurrency-per-key", "3")[0] == 0
    function.refresh_from_db()
    assert (function.max_concurrency, function.concurrency_per_key) == (5, 3)
    code, out, err = cli("limits", "sync", "--max-concurrency", "none", "--concurrency-key", "")
    assert code == 0, err
    assert json.loads(out) == {
        "function": "sync",
        "max_concurrency": None,
        "reserved_concurrency": 2,
        "concurrency_key": None,
        "concurrency_per_key": None,
    }


def test_the_servers_refusal_is_reported(cli, tmp_path):  # noqa: F811
    handler = tmp_path / "handler.py"
    handler.write_text("def main():\n    return 1\n")
    code, _, err = cli("deploy", str(handler), "--name", "x", "--concurrency-key", "$..store")
    assert code == 2 and "concurrency_key" in err


def test_run_and_invoke_take_a_priority(cli, tmp_path):  # noqa: F811
    handler = tmp_path / "add.py"
    handler.write_text("def main(a=1, b=2):\n    return a + b\n")
    assert cli("run", str(handler), "--priority", "9")[0] == 0
    assert cli("deploy", str(handler), "--name", "add")[0] == 0
    assert cli("invoke", "add", "--priority", "0")[0] == 0
    assert sorted(Job.objects.values_list("priority", flat=True)) == [0, 9]
