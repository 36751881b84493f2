"""The CLI's durable commands (deploy --durable, run --durable, steps, event), in process as
test_secrets_cli does: the client's HTTP code answered by the app through Django's test client."""

from __future__ import annotations

import json

import pytest

from client.tests.test_secrets_cli import api, cli  # noqa: F401 - the fixtures
from functions.models import FunctionVersion
from jobs.models import Job, Step

pytestmark = pytest.mark.django_db


def test_deploy_durable_is_kept_by_the_next_version_until_said_otherwise(cli, tmp_path):  # noqa: F811
    handler = tmp_path / "handler.py"
    handler.write_text("def main(ctx):\n    return ctx.step('a', lambda: 1)\n")
    assert cli("deploy", str(handler), "--name", "flow", "--durable")[0] == 0
    assert cli("deploy", str(handler), "--name", "flow")[0] == 0
    assert cli("deploy", str(handler), "--name", "flow", "--no-durable")[0] == 0
    assert list(FunctionVersion.objects.order_by("number").values_list("durable", flat=True)) == [
        True,
        True,
        False,
    ]


def test_run_durable_steps_and_event(cli, alice, tmp_path):  # noqa: F811
    handler = tmp_path / "flow.py"
    handler.write_text("def main(ctx):\n    return 1\n")
    code, out, err = cli("run", str(handler), "--durable")
    assert code == 0, err
    job = Job.objects.get()
    assert job.durable
    Step.objects.create(job=job, seq=1, name="charge", kind="step", status="succeeded", result={"id": 7},
                        started_at=job.created_at)  # fmt: skip
    code, out, err = cli("steps", str(job.id))
    assert code == 0 and out.split() == ["1", "charge", "step", "succeeded", '{"id":', "7}"]
    code, out, err = cli("event", "order.approved", "o-1", "--data", '{"approved": true}')
    assert code == 0 and json.loads(out)["resumed"] == 0
