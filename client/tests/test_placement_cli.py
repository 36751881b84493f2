"""The command line's placement flags (client/lambdasite_placement.py) on run, invoke and deploy, in
process against the app (the fixtures of test_secrets_cli: the client's own HTTP code, real
PostgreSQL and Redis)."""

from __future__ import annotations

import pytest

from client.tests import test_secrets_cli
from functions.models import Function
from jobs.models import Job

pytestmark = pytest.mark.django_db

api, cli = test_secrets_cli.api, test_secrets_cli.cli  # its fixtures: the CLI against the app in process


@pytest.fixture
def handler(tmp_path):
    path = tmp_path / "handler.py"
    path.write_text("def main(a, b):\n    return a + b\n")
    return path


def test_run_and_invoke_send_the_pool_or_the_placement(cli, handler):
    code, out, _ = cli("run", str(handler), "--args", "[1, 2]", "--pool", "eu")
    assert code == 0
    job = Job.objects.get(pk=out.strip())
    assert (job.pool, job.overflow, job.overflow_after_s) == ("eu", [], None)
    code, _, _ = cli("deploy", str(handler), "--name", "add", "--pool", "eu")
    assert code == 0 and Function.objects.get(name="add").pool == "eu"
    code, out, _ = cli("invoke", "add", "--args", "[1, 2]", "--overflow", "burst, big", "--after-wait", "2.5")
    job = Job.objects.get(pk=out.strip())
    assert (job.home_pool, job.overflow, job.overflow_after_s) == ("default", ["burst", "big"], 2.5)


def test_deploy_of_an_existing_function_patches_its_placement(cli, handler):
    assert cli("deploy", str(handler), "--name", "add")[0] == 0
    code, _, _ = cli(
        "deploy", str(handler), "--name", "add", "--pool", "big", "--overflow", "eu", "--after-wait", "9"
    )
    function = Function.objects.get(name="add")
    assert code == 0 and (function.pool, function.overflow, function.overflow_after_s) == ("big", ["eu"], 9.0)
    assert function.versions.count() == 2


def test_a_bad_placement_is_the_servers_400(cli, handler):
    code, _, err = cli("run", str(handler), "--overflow", "burst")
    assert code == 2 and "after_wait_s: required with overflow pools" in err
    assert not Job.objects.exists()
