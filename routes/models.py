"""Routes: public HTTP endpoints ``/fn/<tenant>/<path>`` bound to a function and a qualifier."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from accounts.models import Tenant

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Mode(models.TextChoices):
    SYNC = "sync"  # the answer is the function's: the request waits for its job
    ASYNC = "async"  # 202 with the job's Location at once


class AuthType(models.TextChoices):
    NONE = "none"
    API_KEY = "api_key"  # a key of the route's tenant that may write, as the API takes it
    BASIC = "basic"  # username, and a tenant secret holding the password
    HMAC = "hmac"  # a provider's signature (routes.signatures) with a tenant secret as its key


class Route(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # no index of its own: the unique (tenant, shape) leads with it
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="routes", db_index=False)
    function = models.ForeignKey("functions.Function", on_delete=models.CASCADE, related_name="routes")
    path = models.CharField(max_length=300)  # the pattern, routes.paths
    shape = models.CharField(max_length=300)  # the pattern without parameter names: one route per shape
    methods = models.JSONField(default=list)  # upper-case, from METHODS
    qualifier = models.CharField(max_length=64, blank=True)  # alias or version number; blank: latest ready
    mode = models.CharField(max_length=5, choices=Mode.choices, default=Mode.SYNC)
    # {"type": "none"}, {"type": "api_key"}, {"type": "basic", "username", "secret"},
    # {"type": "hmac", "preset", "secret"[, "header", "algorithm", "encoding", "prefix"]}: secrets by name
    auth = models.JSONField(default=dict)
    delivery_header = models.CharField(max_length=100, blank=True)  # a header naming the delivery id
    cors = models.JSONField(default=list)  # allowed origins; empty: no CORS
    max_body_bytes = models.PositiveIntegerField()
    rate_limit_per_minute = models.PositiveIntegerField(default=0)  # 0: only the tenant's own limit
    expose_errors = models.BooleanField(default=False)  # a failed job's error (traceback) in the 502
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "shape"], name="one_route_per_shape_per_tenant"),
            models.CheckConstraint(condition=Q(mode__in=["sync", "async"]), name="route_mode_is_a_mode"),
            models.CheckConstraint(condition=Q(max_body_bytes__gt=0), name="route_body_cap_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.path}"

    @property
    def auth_type(self) -> str:
        return (self.auth or {}).get("type", AuthType.NONE)
