"""accounts' management commands: quota_set sets every limit the Quota model has."""

from __future__ import annotations

import pytest
from django.contrib.postgres.fields import ArrayField
from django.core.management import CommandError, call_command
from django.db import models

from accounts.models import Quota, Tenant
from accounts.services import tenant_create

pytestmark = pytest.mark.django_db


def _limits() -> list[models.Field]:
    """Read from the model here, not from the command: a field the command misses fails the test."""
    return [f for f in Quota._meta.concrete_fields if f.name not in ("id", "tenant")]


@pytest.fixture
def hooli():
    return tenant_create(slug="hooli", name="Hooli")


@pytest.mark.parametrize("field", _limits(), ids=lambda f: f.name)
def test_quota_set_sets_every_field_of_the_quota(hooli, field, capsys):
    default = field.get_default()
    given = None
    if field.choices:
        wanted = next(value for value, _ in field.choices if value != default)
    elif isinstance(field, ArrayField):  # a list, given comma-separated
        wanted, given = ["eu", "default"], "eu, default,eu"
    else:
        wanted = default * 2 + 1.5 if isinstance(field, models.FloatField) else default + 7
    call_command("quota_set", "hooli", "--" + field.name.replace("_", "-"), given or str(wanted))
    quota = Quota.objects.get(tenant=hooli)
    assert getattr(quota, field.name) == wanted
    others = {f.name: getattr(quota, f.name) for f in _limits() if f is not field}
    assert others == {f.name: f.get_default() for f in _limits() if f is not field}  # nothing else moved
    assert f"{field.name}={wanted}" in capsys.readouterr().out


def test_quota_set_sets_several_fields_at_once_and_keeps_its_short_names(hooli):
    call_command(
        "quota_set", "hooli", "--per-minute", "99", "--gb-seconds", "12.5",
        "--max-schedules", "3", "--min-schedule-interval-s", "300", "--retention-days", "0",
    )  # fmt: skip
    quota = Quota.objects.get(tenant=hooli)
    assert (quota.submissions_per_minute, quota.monthly_gb_seconds) == (99, 12.5)
    assert (quota.max_schedules, quota.min_schedule_interval_s, quota.retention_days) == (3, 300, 0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-log-lines", "many"], "--max-log-lines"),
        (["--max-functions", "-1"], "--max-functions"),
        (["--max-functions", "1.5"], "--max-functions"),
        (["--max-concurrency", "99999999999"], "--max-concurrency"),  # past the column's range
        (["--gb-seconds", "-2"], "must not be negative"),
        (["--gb-seconds", "nan"], "finite"),
        (["--gb-seconds", "inf"], "finite"),
        (["--allowed-pools", "default,EU"], "'EU'"),  # not a pool name (jobs.pools)
    ],
)
def test_a_bad_value_is_a_clean_error_and_nothing_is_saved(hooli, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("quota_set", "hooli", "--max-schedules", "5", *args)
    assert Quota.objects.get(tenant=hooli).max_schedules == Quota._meta.get_field("max_schedules").default


def test_quota_set_sets_the_widest_egress_and_refuses_an_unknown_one(hooli):
    call_command("quota_set", "hooli", "--max-egress", "public")
    assert Quota.objects.get(tenant=hooli).max_egress == "public"
    with pytest.raises(CommandError, match="--max-egress"):
        call_command("quota_set", "hooli", "--max-egress", "everything")
    assert Quota.objects.get(tenant=hooli).max_egress == "public"


def test_quota_set_sets_the_monthly_egress_budget_or_lifts_it(hooli):
    call_command("quota_set", "hooli", "--max-egress-bytes-month", "5000")
    assert Quota.objects.get(tenant=hooli).max_egress_bytes_month == 5000
    call_command("quota_set", "hooli", "--max-egress-bytes-month", "unlimited")
    assert Quota.objects.get(tenant=hooli).max_egress_bytes_month is None
    with pytest.raises(CommandError, match="--max-egress-bytes-month"):
        call_command("quota_set", "hooli", "--max-egress-bytes-month", "-1")


def test_an_unknown_tenant_and_a_suspend_with_a_resume_are_refused(hooli):
    with pytest.raises(CommandError, match="no tenant"):
        call_command("quota_set", "nobody", "--max-functions", "3")
    with pytest.raises(CommandError):
        call_command("quota_set", "hooli", "--suspend", "--resume")
    call_command("quota_set", "hooli", "--suspend")
    assert Tenant.objects.get(slug="hooli").is_suspended
