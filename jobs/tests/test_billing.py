"""Billing arithmetic, the billing period, and the cached monthly use that admission reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from jobs import billing
from jobs.models import Attempt
from jobs.services.submit import JobSpec, job_submit

pytestmark = pytest.mark.django_db


def test_an_attempt_is_billed_by_the_millisecond_rounded_up_and_at_least_one():
    assert [billing.billed_ms(v) for v in (None, 0, 0.01, 1.0, 1000.2)] == [0, 0, 1, 1, 1001]
    assert billing.gb_seconds(1024, 1000) == 1.0 and billing.gb_seconds(128, 1001) == pytest.approx(
        0.125 * 1.001
    )


def test_cost_is_compute_plus_requests(settings):
    settings.PRICE_PER_GB_SECOND, settings.PRICE_PER_MILLION_REQUESTS = 0.5, 2.0
    assert billing.cost(gb_seconds=4.0, requests=500_000) == pytest.approx(2.0 + 1.0)


@pytest.mark.parametrize(
    "now, start, end",
    [
        (
            datetime(2026, 3, 15, 12, tzinfo=UTC),
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (
            datetime(2027, 1, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
            datetime(2027, 2, 1, tzinfo=UTC),
        ),
    ],
)
def test_the_billing_period_is_the_calendar_month_in_utc(now, start, end):
    assert billing.billing_period(now) == (start, end)
    assert billing.usage_period(now) == f"{start:%Y%m}"


def test_the_cached_use_is_seeded_from_postgresql_and_only_then_incremented(alice, redis_conn):
    job = job_submit(tenant=alice.tenant, api_key=alice.api_key, spec=JobSpec(runtime="python", code="x"))[0]
    Attempt.objects.create(job=job, number=1, started_at=timezone.now(), status="succeeded", gb_seconds=0.25)
    key = billing.USAGE_KEY.format(tenant=alice.tenant.id, period=billing.usage_period())
    redis_conn.delete(key)  # (admission of the submit above cached the use before this attempt existed)
    with redis_conn.pipeline() as pipe:  # nothing cached yet: an increment is not a total, so it is skipped
        billing.add_usage(pipe, tenant_id=alice.tenant.id, gb_seconds=1.0)
        pipe.execute()
    assert redis_conn.get(key) is None
    assert billing.gb_seconds_used_fast(tenant=alice.tenant) == 0.25  # seeded from the attempts
    with redis_conn.pipeline() as pipe:
        billing.add_usage(pipe, tenant_id=alice.tenant.id, gb_seconds=1.0)
        pipe.execute()
    assert billing.gb_seconds_used_fast(tenant=alice.tenant) == 1.25
    assert 0 < redis_conn.ttl(key) <= billing.USAGE_REFRESH_S  # re-seeded from PostgreSQL periodically
