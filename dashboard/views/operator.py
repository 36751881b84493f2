"""Operator pages: the platform as a whole, for staff only (every tenant's load, never shown to one)."""

from __future__ import annotations

import functools

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from jobs import pool_stats


def staff_page(view):
    """Signed in and staff. Anyone else signed in gets a 404: the page's existence is an operator's
    business, like another tenant's job."""

    @login_required
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise Http404("no such page")
        return view(request, *args, **kwargs)

    return wrapper


@staff_page
def pools(request):
    """Every worker pool: its live workers by name, its RQ queue, every tenant's jobs waiting and in
    flight there, and the queue waits of the jobs that started there in the last five minutes."""
    now = timezone.now()
    found = pool_stats.platform_pools(now=now)
    return render(
        request,
        "dashboard/operator_pools.html",
        {"pools": found, "now": now, "window_min": pool_stats.RECENT_S // 60},
    )
