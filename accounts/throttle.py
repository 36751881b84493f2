"""Sign-in throttling for /login/ and /admin/login/: token buckets per client address and per
account name, in the same Redis limiter the API uses. Guessing passwords costs minutes, not ms;
a throttled attempt gets 429 with Retry-After and is not even checked."""

from __future__ import annotations

import functools
import hashlib

from django.conf import settings
from django.shortcuts import render

from . import ratelimit


def _buckets(request) -> list[tuple[str, int]]:
    address = request.META.get("REMOTE_ADDR", "")
    name = (request.POST.get("username") or "").strip().lower()
    account = hashlib.sha256(name.encode()).hexdigest()[:32]  # no emails in Redis keys
    return [
        (f"login-ip:{address}", settings.LOGIN_ATTEMPTS_PER_IP_PER_MINUTE),
        (f"login-account:{account}", settings.LOGIN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE),
    ]


def login_throttled(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "POST":
            for bucket, per_minute in _buckets(request):
                allowed, wait = ratelimit.take(bucket=bucket, per_minute=per_minute)
                if not allowed:
                    response = render(
                        request,
                        "dashboard/error.html",
                        {
                            "title": "Too many attempts",
                            "message": f"Too many sign-in attempts; try again in {wait} s.",
                        },
                        status=429,
                    )
                    response["Retry-After"] = str(wait)
                    return response
        return view(request, *args, **kwargs)

    return wrapper
