"""What the worker gives a run of a deployed version or an inline job (jobs.execution.run_spec): its
egress, env and the current values of its bound secrets; a deleted secret fails the job before
anything runs. No Docker: the pool is a stand-in that records the spec."""

from __future__ import annotations

import pytest

import sandbox
from functions.services import invoke
from functions.services.deploy import VersionSpec, function_create
from jobs import execution
from jobs.models import Status
from jobs.services.submit import JobSpec, job_submit
from vault.services import Actor, secret_delete, secret_put

pytestmark = pytest.mark.django_db
OWNER = Actor(label="owner", is_owner=True)


class RecordingPool:
    def __init__(self) -> None:
        self.specs: list[sandbox.RunSpec] = []

    def run(self, spec, on_output=None, cancel=None):
        self.specs.append(spec)
        return sandbox.RunResult(status="succeeded", result=1, duration_ms=1.0)


@pytest.fixture
def pool(monkeypatch):
    recording = RecordingPool()
    monkeypatch.setattr(sandbox, "default", lambda: recording)
    return recording


def deployed(persona, **reach):
    function_create(
        tenant=persona.tenant, user=None, name="charge", runtime="python",
        spec=VersionSpec(code="def main():\n    return 1\n", **reach),
    )  # fmt: skip
    job, _ = invoke.function_invoke(tenant=persona.tenant, api_key=persona.api_key, name="charge")
    return job


def test_a_version_runs_with_its_egress_env_and_current_secret_values(alice, pool):
    secret_put(tenant=alice.tenant, name="stripe", value="sk_1", actor=OWNER)
    job = deployed(
        alice, egress=["api.stripe.com:443"], env={"MODE": "live"}, secrets={"STRIPE_KEY": "stripe"}
    )
    secret_put(tenant=alice.tenant, name="stripe", value="sk_2", actor=OWNER)  # rotated after the deploy
    assert execution.job_execute(job_id=job.id).status == Status.SUCCEEDED
    (spec,) = pool.specs
    assert spec.egress == sandbox.Egress(mode="allowlist", allow=("api.stripe.com:443",))
    assert dict(spec.env) == {"MODE": "live"}
    assert spec.secrets == (
        sandbox.SecretValue(name="STRIPE_KEY", value="sk_2", revision=2, secret="stripe"),
    )
    assert "sk_2" not in repr(spec)


def test_an_inline_job_runs_with_its_own_egress_env_and_current_secret_values(alice, pool):
    secret_put(tenant=alice.tenant, name="github", value="ghp_1", actor=OWNER)
    spec = JobSpec(
        runtime="python", code="def main():\n    return 1\n",
        egress=["api.github.com:443"], env={"MODE": "test"}, secrets={"GITHUB_TOKEN": "github"},
    )  # fmt: skip
    job = job_submit(tenant=alice.tenant, api_key=alice.api_key, spec=spec)[0]
    secret_put(tenant=alice.tenant, name="github", value="ghp_2", actor=OWNER)  # rotated after the submit
    assert execution.job_execute(job_id=job.id).status == Status.SUCCEEDED
    (ran,) = pool.specs
    assert ran.egress == sandbox.Egress(mode="allowlist", allow=("api.github.com:443",))
    assert dict(ran.env) == {"MODE": "test"}
    assert ran.secrets == (
        sandbox.SecretValue(name="GITHUB_TOKEN", value="ghp_2", revision=2, secret="github"),
    )
    assert ran.secret_revisions() == (("github", 2),)


def test_an_inline_jobs_secret_deleted_before_it_runs_fails_it_plainly(alice, pool):
    secret_put(tenant=alice.tenant, name="github", value="ghp_1", actor=OWNER)
    spec = JobSpec(runtime="python", code="def main():\n    return 1\n", secrets={"TOKEN": "github"})
    job = job_submit(tenant=alice.tenant, api_key=alice.api_key, spec=spec)[0]
    secret_delete(tenant=alice.tenant, name="github", actor=OWNER)
    finished = execution.job_execute(job_id=job.id)
    assert finished.status == Status.FAILED and not pool.specs
    assert finished.error["type"] == "SecretNotFound"


def test_inline_jobs_and_versions_without_any_reach_nothing(alice, pool):
    inline = job_submit(tenant=alice.tenant, api_key=alice.api_key,
                        spec=JobSpec(runtime="python", code="def main():\n    return 1\n"))[0]  # fmt: skip
    execution.job_execute(job_id=inline.id)
    execution.job_execute(job_id=deployed(alice).id)
    for spec in pool.specs:
        assert (spec.egress, dict(spec.env), spec.secrets) == (sandbox.Egress.NONE, {}, ())


def test_a_bound_secret_deleted_since_the_deploy_fails_the_job_before_it_runs(alice, pool):
    secret_put(tenant=alice.tenant, name="stripe", value="sk_1", actor=OWNER)
    job = deployed(alice, secrets={"STRIPE_KEY": "stripe"})
    secret_delete(tenant=alice.tenant, name="stripe", actor=OWNER)
    finished = execution.job_execute(job_id=job.id)
    assert finished.status == Status.FAILED and not pool.specs
    assert finished.error["type"] == "SecretNotFound"
    assert "no secret named stripe" in finished.error["message"]


def test_a_master_key_the_worker_lacks_is_the_platforms_failure(alice, pool, settings):
    secret_put(tenant=alice.tenant, name="stripe", value="sk_1", actor=OWNER)
    job = deployed(alice, secrets={"STRIPE_KEY": "stripe"})
    settings.SECRETS_KEY = b"\x01" * 32
    ended = execution.job_execute(job_id=job.id)
    assert not pool.specs and ended.error["code"] == "secrets_unavailable"
    assert ended.status in (Status.QUEUED, Status.RETRYING)  # retried on the system budget
