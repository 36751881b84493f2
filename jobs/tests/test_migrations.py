"""jobs/0010: jobs gain what they reach and are given; function jobs made before it show their
version's, inline jobs from before reach nothing (the columns' defaults, also the database's)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from functions.services.deploy import VersionSpec, function_create
from jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("jobs", "0009_trigger")]


def migrate(target=None):
    """To ``target``, or to every app's latest migration."""
    target = target or MigrationExecutor(connection).loader.graph.leaf_nodes()
    MigrationExecutor(connection).migrate(target)
    return MigrationExecutor(connection).loader.project_state(target).apps


def test_function_jobs_from_before_show_their_versions_reach(alice):
    _, reaching = function_create(
        tenant=alice.tenant, user=None, name="fetch", runtime="python",
        spec=VersionSpec(code="def main():\n    return 1\n", egress=["api.example.com:443"], env={"A": "1"}),
    )  # fmt: skip
    _, plain = function_create(
        tenant=alice.tenant, user=None, name="add", runtime="python",
        spec=VersionSpec(code="def main():\n    return 1\n"),
    )  # fmt: skip
    apps = migrate(BEFORE)
    try:
        OldJob = apps.get_model("jobs", "Job")  # noqa: N806 - a model class

        def old(version=None):
            return OldJob.objects.create(
                tenant_id=alice.tenant.pk, runtime="python", code="x", timeout_ms=1000, memory_mb=128,
                function_version_id=version.pk if version else None,
                function_name=version.function.name if version else "",
            ).pk  # fmt: skip

        ids = old(reaching), old(plain), old()
    finally:
        migrate()
    jobs = {j.pk: j for j in Job.objects.filter(pk__in=ids)}
    rows = [(jobs[pk].egress, jobs[pk].env, jobs[pk].secrets, jobs[pk].egress_bytes) for pk in ids]
    assert rows == [(["api.example.com:443"], {"A": "1"}, {}, 0), ("none", {}, {}, 0), ("none", {}, {}, 0)]
