"""The overview: this tenant's jobs, success rate, run times, quotas in use and cost."""

from __future__ import annotations

from datetime import timedelta

from django.shortcuts import render
from django.utils import timezone

from accounts import ratelimit
from jobs import selectors
from jobs.billing import GIB
from jobs.models import Status

from .. import charts
from ..tenancy import dashboard_view
from .common import partial

RANGES = {"hour": (timedelta(hours=1), 60), "day": (timedelta(days=1), 15 * 60)}


@dashboard_view()
def overview(request):
    tenant = request.ctx.tenant
    range_name = request.GET.get("range") if request.GET.get("range") in RANGES else "hour"
    span, bucket_s = RANGES[range_name]
    now = timezone.now()
    since = (now - span).replace(second=0, microsecond=0)
    stats = selectors.tenant_stats(tenant=tenant, since=since, now=now)
    usage = selectors.tenant_usage(tenant=tenant, now=now)
    series = selectors.tenant_timeseries(tenant=tenant, since=since, bucket_s=bucket_s, now=now)
    times = [point["start"] for point in series]
    per_minute = [point["jobs"] / (bucket_s / 60) for point in series]
    quota = tenant.quota
    tokens_left = ratelimit.peek(
        bucket=ratelimit.tenant_bucket(tenant), per_minute=quota.submissions_per_minute
    )
    rate_used = quota.submissions_per_minute - tokens_left
    bars = [
        _bar(
            "Concurrency", usage["concurrency"]["in_use"], quota.max_concurrency, "running or dispatched now"
        ),
        _bar("Submission rate", rate_used, quota.submissions_per_minute, "of the per-minute bucket in use"),
        _bar("Compute this month", usage["gb_seconds"]["used"], quota.monthly_gb_seconds, "GB-s"),
    ]
    if quota.max_egress_bytes_month is not None:
        bars.append(
            _bar("Egress this month", usage["egress_bytes"] / GIB, quota.max_egress_bytes_month / GIB, "GiB")
        )
    context = {
        "range": range_name,
        "stats": stats,
        "usage": usage,
        "status_counts": [(s, stats["by_status"].get(s, 0)) for s in Status.values if s != Status.LOST],
        "bars": bars,
        "jobs_chart": charts.bars(per_minute, times, label=f"Jobs per minute, last {range_name}"),
        "run_chart": charts.lines(
            {"p50": [p["run_p50_ms"] for p in series], "p95": [p["run_p95_ms"] for p in series]},
            times,
            label=f"Run time p50 and p95, last {range_name}",
            unit="ms",
        ),
        "live_ws": f"/ws/tenants/{tenant.slug}/",
    }
    template = "dashboard/_overview.html" if partial(request) else "dashboard/overview.html"
    return render(request, template, context)


def _bar(label: str, used: float, limit: float, unit: str) -> dict:
    used = max(0.0, float(used))
    percent = min(100.0, 100.0 * used / limit) if limit else 100.0
    level = "high" if percent >= 90 else "mid" if percent >= 70 else "low"
    return {
        "label": label,
        "used": used,
        "limit": limit,
        "unit": unit,
        "percent": round(percent, 1),
        "level": level,
    }
