"""Tenants, their members, API keys and quotas."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models

from lambdasite.exceptions import Forbidden, PayloadTooLarge, ValidationFailed
from lambdasite.parsers import POOL_NAME_RULE, pool_name_valid


class Tenant(models.Model):
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    is_suspended = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"
        VIEWER = "viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="one_membership_per_user_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class ApiKey(models.Model):
    """A tenant's API key. Only ``key_id`` (public) and an HMAC of the whole key are stored.

    A *user* key acts for the member who created it: it works only while that user is
    active and still a member of the tenant, and writes only while their role allows it.
    An *operator* key (``manage.py apikey_create``, the admin) belongs to the tenant itself.
    The kind is explicit: a user key whose creator is deleted does not become an operator key."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"

    class Kind(models.TextChoices):
        USER = "user"
        OPERATOR = "operator"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=5, choices=Scope.choices, default=Scope.WRITE)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.USER)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def prefix(self) -> str:
        return f"lsk_{self.key_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Invitation(models.Model):
    """An owner's invitation of an email address to a tenant. Nobody becomes a member without
    accepting: an existing account accepts after signing in; the link's token lets a new person
    create their account. Only an HMAC of the token is stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_at = models.DateTimeField(
        null=True, blank=True
    )  # declined by the invitee or withdrawn by an owner

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "email"],
                condition=models.Q(accepted_at__isnull=True, closed_at__isnull=True),
                name="one_open_invitation_per_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant} ({self.role})"

    @property
    def is_open(self) -> bool:
        from django.utils import timezone

        return self.accepted_at is None and self.closed_at is None and self.expires_at > timezone.now()


def _mb(n: int) -> int:
    return n * 1024 * 1024


class Quota(models.Model):
    """Per-tenant limits, edited by operators in admin; read on every submission."""

    class Egress(models.TextChoices):
        """How far a tenant's versions may reach, in increasing order."""

        NONE = "none", "none (no network)"
        ALLOWLIST = "allowlist", "allowlist (host:port patterns)"
        PUBLIC = "public", "public (any public address)"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="quota")
    # jobs dispatched or running at once; 100: what one host now runs (issue 25, README "Capacity")
    max_concurrency = models.PositiveIntegerField(default=100)
    # the worker pools (jobs.pools) this tenant's jobs may be placed in; null: every pool
    allowed_pools = ArrayField(
        models.CharField(max_length=32),
        null=True,
        blank=True,
        default=None,
        help_text="worker pools this tenant's jobs may be placed in, comma-separated; empty: every pool",
    )
    submissions_per_minute = models.PositiveIntegerField(default=600)
    monthly_gb_seconds = models.FloatField(default=100_000.0)
    max_timeout_ms = models.PositiveIntegerField(default=60_000)
    max_memory_mb = models.PositiveIntegerField(default=512)
    max_code_bytes = models.PositiveIntegerField(default=256 * 1024)
    max_args_bytes = models.PositiveIntegerField(default=256 * 1024)
    max_result_bytes = models.PositiveIntegerField(default=_mb(1))
    max_log_bytes = models.PositiveIntegerField(default=_mb(1))
    max_log_lines = models.PositiveIntegerField(default=10_000)  # per attempt: bounds rows, not only bytes
    default_max_retries = models.PositiveIntegerField(default=0)
    max_retries_cap = models.PositiveIntegerField(default=10)
    max_functions = models.PositiveIntegerField(default=100)
    max_provisioned_cells = models.PositiveIntegerField(
        default=4
    )  # warm cells kept for the tenant's functions
    max_dependency_bytes = models.PositiveBigIntegerField(default=_mb(256))  # installed size of one layer
    max_schedules = models.PositiveIntegerField(default=20)
    min_schedule_interval_s = models.PositiveIntegerField(default=60)  # the shortest gap between two ticks
    max_webhook_endpoints = models.PositiveIntegerField(default=10)
    retention_days = models.PositiveIntegerField(
        default=30,
        help_text="finished jobs, their attempts, log lines and webhook deliveries are deleted after "
        "this many days (0 keeps them forever)",
    )

    max_versions_per_function = models.PositiveIntegerField(
        default=200, help_text="versions a function may have; deploy a new function past it"
    )
    deploys_per_minute = models.PositiveIntegerField(
        default=20, help_text="functions and versions created per minute (each may start a build)"
    )
    max_concurrent_builds = models.PositiveIntegerField(
        default=1, help_text="builds of this tenant's versions running at once; the others wait their turn"
    )
    writes_per_minute = models.PositiveIntegerField(
        default=120, help_text="API writes per minute other than submissions (which have their own rate)"
    )
    max_egress = models.CharField(
        max_length=10,
        choices=Egress.choices,
        default=Egress.ALLOWLIST,
        help_text="the widest egress a version may declare: none, allowlist (host:port patterns) or public",
    )
    max_secrets = models.PositiveIntegerField(default=100, help_text="secrets the tenant may hold")
    max_egress_bytes_month = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        default=10 << 30,
        db_default=10 << 30,  # a tenant made by the previous release while a deploy migrates gets it too
        help_text="bytes the tenant's jobs may send and receive through egress in a calendar month (UTC); "
        "a transfer past it is cut; empty: unlimited",
    )
    # durable runs (jobs.services.durable): db_default, so a process of the previous release inserts
    # quotas while a deploy migrates
    max_steps_per_run = models.PositiveIntegerField(
        default=1000, db_default=1000, help_text="steps (and waits) one durable run may record"
    )
    max_recorded_bytes_per_run = models.PositiveIntegerField(
        default=_mb(4),
        db_default=_mb(4),
        help_text="bytes of step results, errors and inputs one run may record",
    )
    max_run_lifetime_s = models.PositiveIntegerField(
        default=30 * 86400,
        db_default=30 * 86400,
        help_text="how long a durable run may last from its submission, sleeps and waits included",
    )
    max_children_per_map = models.PositiveIntegerField(
        default=1000, db_default=1000, help_text="child invocations one map step may start"
    )

    def __str__(self) -> str:
        return f"quota of {self.tenant}"

    def egress_bytes_left(self, used: int) -> int | None:
        """The bytes the tenant's jobs may still move through egress this month, having moved
        ``used``; None: no monthly budget."""
        if self.max_egress_bytes_month is None:
            return None
        return max(0, self.max_egress_bytes_month - max(0, used))

    def default_timeout_ms(self) -> int:
        """A job's time limit when it names none: the platform's default, within this quota."""
        return min(settings.JOB_DEFAULT_TIMEOUT_MS, self.max_timeout_ms)

    def default_memory_mb(self) -> int:
        """A job's memory limit when it names none: the platform's default, within this quota."""
        return min(settings.JOB_DEFAULT_MEMORY_MB, self.max_memory_mb)

    def check_code(self, code: str) -> None:
        """Refuse source over ``max_code_bytes`` (413, naming the field, its size and the cap)."""
        size = len(code.encode("utf-8", "surrogatepass"))
        if size > self.max_code_bytes:
            raise PayloadTooLarge(
                f"code is {size} bytes, over this tenant's cap of {self.max_code_bytes}",
                details={"field": "code", "size": size, "limit": self.max_code_bytes},
            )

    def check_egress(self, egress) -> None:
        """Refuse an egress policy (``"none"``, a list of patterns, ``"public"``) wider than
        ``max_egress`` (403 ``egress_not_allowed``, naming both)."""
        asked = egress if isinstance(egress, str) else self.Egress.ALLOWLIST
        order = list(self.Egress.values)
        if asked in order and order.index(asked) <= order.index(self.max_egress):
            return
        raise Forbidden(
            f"egress: {asked} is beyond this tenant's max_egress of {self.max_egress}; "
            "ask an operator to raise it",
            code="egress_not_allowed",
            details={"field": "egress", "quota": "max_egress", "limit": self.max_egress, "requested": asked},
        )

    def check_pools(self, names) -> None:
        """Refuse a placement naming a pool outside ``allowed_pools`` (403 ``pool_not_allowed``, naming
        the pool and the allowed ones); null allows every pool."""
        allowed = self.allowed_pools
        if allowed is None:
            return
        for name in names:
            if name not in allowed:
                raise Forbidden(
                    f"pool: this tenant may not use pool {name!r} (allowed: {', '.join(allowed) or 'none'}); "
                    "ask an operator to allow it",
                    code="pool_not_allowed",
                    details={"field": "pool", "pool": name, "allowed": list(allowed)},
                )

    def clean(self) -> None:
        """An operator's allowed_pools are pool names (jobs.pools), each once (admin, quota_set)."""
        if not self.allowed_pools:
            self.allowed_pools = None  # empty: every pool (a form's empty field, quota_set's "none")
            return
        bad = [name for name in self.allowed_pools if not pool_name_valid(name)]
        if bad:
            raise ValidationError({"allowed_pools": f"{bad[0]!r}: {POOL_NAME_RULE}"})
        self.allowed_pools = list(dict.fromkeys(self.allowed_pools))

    def check_limits(self, *, timeout_ms: int | None, memory_mb: int | None, max_retries: int | None) -> None:
        """Refuse a limit over this quota's cap (400 naming the field and the cap); None: not given."""
        for name, value, cap in (
            ("timeout_ms", timeout_ms, self.max_timeout_ms),
            ("memory_mb", memory_mb, self.max_memory_mb),
            ("max_retries", max_retries, self.max_retries_cap),
        ):
            if value is not None and value > cap:
                raise ValidationFailed(
                    f"{name}: {value} is over this tenant's cap of {cap}",
                    details={"fields": {name: [f"must be at most {cap}"]}, "field": name, "limit": cap},
                )


class UsageCharge(models.Model):
    """Compute a tenant used outside a job's attempts (a build), billed like an attempt's GB-s."""

    class Kind(models.TextChoices):
        BUILD = "build"
        WARM = "warm"  # a warm-up's cell start and module initialisation
        IDLE = "idle"  # tenant code that ran in an idle cell between jobs (the cell is retired)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_charges")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    gb_seconds = models.FloatField()
    reference = models.CharField(max_length=200, blank=True)  # e.g. "version <id>"
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="usage_charge_tenant_time")]
        constraints = [
            models.CheckConstraint(condition=models.Q(gb_seconds__gte=0), name="charge_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.gb_seconds:.3f} GB-s for {self.tenant_id}"
