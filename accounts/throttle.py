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


class TenantWriteThrottle:
    """DRF throttle: an API write (any unsafe method) costs one token of the tenant's ``writes``
    bucket (``Quota.writes_per_minute``). Submissions, batches, invocations and warm-ups are exempt:
    admission meters them with the tenant's own submission rate. A refusal is DRF's 429 with
    ``Retry-After``, reshaped into the error envelope like every other error."""

    ADMITTED = frozenset({"api-jobs", "api-jobs-batch", "api-function-invoke", "api-function-warm"})

    def __init__(self) -> None:
        self.wait_s: int | None = None

    def allow_request(self, request, view) -> bool:
        from rest_framework.permissions import SAFE_METHODS

        principal = getattr(request, "user", None)
        tenant = getattr(principal, "tenant", None)
        if request.method in SAFE_METHODS or tenant is None:
            return True
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name in self.ADMITTED:
            return True
        per_minute = tenant.quota.writes_per_minute
        allowed, wait = ratelimit.take(bucket=f"writes:{tenant.pk}", per_minute=per_minute)
        self.wait_s = None if allowed else wait
        return allowed

    def wait(self) -> int | None:
        return self.wait_s
