"""Functions, their immutable versions, aliases, and the dependency layers versions share."""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q

from accounts.models import Tenant

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


EGRESS_MODES = ("none", "allowlist", "public")  # sandbox.egress_policy.EGRESS_MODES


def content_hash(
    *,
    runtime: str,
    handler: str,
    code: str,
    lock: str,
    egress: tuple[str, list | tuple] = ("none", ()),
    env: dict | None = None,
    secrets: dict | None = None,
    durable: bool = False,
) -> str:
    """What a version is: the same runtime, handler, code, lock, egress, env and secret bindings
    (and durability) give the same hash. A version that reaches nothing, is given nothing and is not
    durable hashes as versions did before they could (its hash, and the cells keyed by it, unchanged)."""
    parts: list = [runtime, handler, code, lock]
    mode, allow = egress
    if mode != "none" or env or secrets:
        parts.append({"egress": [mode, sorted(allow)], "env": env or {}, "secrets": secrets or {}})
    if durable:
        parts.append({"durable": True})
    canonical = json.dumps(parts, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class BuildStatus(models.TextChoices):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


class DependencyLayer(models.Model):
    """Installed packages for one runtime + lock: a Docker volume shared by every version with that lock,
    whatever its function or tenant. Content-addressed: ``digest`` names the lock exactly."""

    runtime = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    lock = models.TextField()
    volume = models.CharField(max_length=100, blank=True)  # set when installed: one per install
    status = models.CharField(max_length=10, choices=BuildStatus.choices, default=BuildStatus.BUILDING)
    packages = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    files = models.PositiveIntegerField(default=0)
    content_sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    builder = models.CharField(max_length=200, blank=True)  # the worker installing it now
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.runtime} layer {self.digest[:12]} ({self.status})"


class Function(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="functions")
    name = models.CharField(max_length=64)
    runtime = models.CharField(max_length=16)
    handler = models.CharField(max_length=100, default="main")  # the latest version's
    description = models.TextField(blank=True)
    # defaults for invocations (null: the tenant's defaults); the latest version's values
    timeout_ms = models.PositiveIntegerField(null=True, blank=True)
    memory_mb = models.PositiveIntegerField(null=True, blank=True)
    max_retries = models.PositiveIntegerField(null=True, blank=True)
    provisioned = models.PositiveIntegerField(default=0)  # warm cells kept ready for the latest version
    # flow control (jobs.services.flow), enforced when slots are filled. max_concurrency: at most this
    # many of its jobs dispatched or running (null: the tenant's cap alone); reserved_concurrency: slots
    # of the tenant's cap only its jobs may take (they may also use the unreserved rest); a
    # concurrency_key (jobs.concurrency_key) makes each key's jobs a lane of concurrency_per_key slots
    max_concurrency = models.PositiveIntegerField(null=True, blank=True, db_default=None)
    reserved_concurrency = models.PositiveIntegerField(default=0, db_default=0)
    concurrency_key = models.CharField(max_length=200, blank=True, default="", db_default="")
    # placement (jobs.pools): the worker pool its jobs go to, and where they may overflow once they
    # waited overflow_after_s (null: never); copied onto each job at submit, a job's own placement wins
    pool = models.CharField(max_length=32, default="default", db_default="default")
    overflow = ArrayField(models.CharField(max_length=32), default=list, db_default=[], blank=True)
    overflow_after_s = models.FloatField(null=True, blank=True)
    concurrency_per_key = models.PositiveIntegerField(null=True, blank=True, db_default=None)
    is_disabled = models.BooleanField(default=False)
    disabled_reason = models.CharField(max_length=200, blank=True)
    latest_number = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="one_function_name_per_tenant"),
            models.CheckConstraint(condition=Q(name__regex=NAME_PATTERN), name="function_name_format"),
            models.CheckConstraint(
                condition=Q(max_concurrency__isnull=True)
                | (Q(max_concurrency__gte=1) & Q(max_concurrency__gte=F("reserved_concurrency"))),
                name="function_max_concurrency_covers_reserved",
            ),
            models.CheckConstraint(
                condition=(Q(concurrency_key="") & Q(concurrency_per_key__isnull=True))
                | (~Q(concurrency_key="") & Q(concurrency_per_key__gte=1)),
                name="function_concurrency_key_has_a_limit",
            ),
        ]
        indexes = [
            # the fill's "does this tenant need the general path?" probe: an index that holds only the
            # functions with a limit, so a tenant without one costs the probe of an empty range
            models.Index(
                fields=["tenant"],
                name="function_flow_limited",
                condition=Q(max_concurrency__isnull=False)
                | Q(reserved_concurrency__gt=0)
                | ~Q(concurrency_key=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"


class FunctionVersion(models.Model):
    """Immutable once created; the build fills in the lock, the content hash and the layer, once."""

    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    code = models.TextField()
    handler = models.CharField(max_length=100, default="main")
    requirements = models.TextField(blank=True)  # Python: requirements.txt lines
    dependencies = models.JSONField(default=dict, blank=True)  # Node: package.json's dependencies
    description = models.TextField(blank=True)
    timeout_ms = models.PositiveIntegerField(null=True, blank=True)
    memory_mb = models.PositiveIntegerField(null=True, blank=True)
    max_retries = models.PositiveIntegerField(null=True, blank=True)
    # where it may connect: none, allowlist (egress_allow's host:port patterns) or public (any public address)
    egress_mode = models.CharField(
        max_length=10, choices=[(m, m) for m in EGRESS_MODES], default="none", verbose_name="egress"
    )
    egress_allow = models.JSONField(default=list, blank=True)  # normalised, sorted host:port patterns
    env = models.JSONField(default=dict, blank=True)  # non-secret configuration: {NAME: value}
    secrets = models.JSONField(default=dict, blank=True)  # bindings: {ENV_NAME: the tenant's secret name}
    # its handler gets a durable run's context first (jobs.services.durable); copied to its jobs
    durable = models.BooleanField(default=False, db_default=False)
    lock = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64, blank=True)  # everything above that runs, and the lock
    status = models.CharField(max_length=10, choices=BuildStatus.choices, default=BuildStatus.BUILDING)
    build_error = models.TextField(blank=True)
    layer = models.ForeignKey(
        DependencyLayer, null=True, blank=True, on_delete=models.PROTECT, related_name="versions"
    )
    build_attempts = models.PositiveIntegerField(default=0)
    builder = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    build_log_lines = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["function", "-number"]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="version_build_lease")]
        constraints = [
            models.UniqueConstraint(fields=["function", "number"], name="one_version_number_per_function"),
            models.CheckConstraint(condition=Q(number__gte=1), name="version_number_from_one"),
            models.CheckConstraint(
                condition=~Q(status=BuildStatus.READY) | ~Q(content_hash=""), name="ready_version_has_a_hash"
            ),
            models.CheckConstraint(condition=Q(egress_mode__in=EGRESS_MODES), name="version_egress_mode"),
        ]

    def __str__(self) -> str:
        return f"{self.function} v{self.number} ({self.status})"

    @property
    def has_dependencies(self) -> bool:
        return bool(self.requirements.strip() or self.dependencies)

    @property
    def egress(self) -> str | list[str]:
        """As the API shows and takes it: "none", "public", or the list of patterns."""
        return list(self.egress_allow) if self.egress_mode == "allowlist" else self.egress_mode

    def hash_with(self, lock: str) -> str:
        return content_hash(
            runtime=self.function.runtime,
            handler=self.handler,
            code=self.code,
            lock=lock,
            egress=(self.egress_mode, self.egress_allow),
            env=self.env,
            secrets=self.secrets,
            durable=self.durable,
        )


class Alias(models.Model):
    """A name for a version (``prod``), optionally sending ``additional_weight`` of calls to a second one."""

    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=64)
    version = models.ForeignKey(FunctionVersion, on_delete=models.CASCADE, related_name="+")
    additional_version = models.ForeignKey(
        FunctionVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    additional_weight = models.FloatField(default=0.0)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "aliases"
        ordering = ["function", "name"]
        constraints = [
            models.UniqueConstraint(fields=["function", "name"], name="one_alias_name_per_function"),
            models.CheckConstraint(
                condition=Q(additional_weight__gte=0) & Q(additional_weight__lte=1),
                name="alias_weight_in_range",
            ),
            models.CheckConstraint(
                condition=Q(additional_version__isnull=True) | ~Q(additional_version=F("version")),
                name="alias_versions_differ",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.function}:{self.name}"


class BuildLogLine(models.Model):
    version = models.ForeignKey(FunctionVersion, on_delete=models.CASCADE, related_name="build_log")
    seq = models.PositiveIntegerField()
    stream = models.CharField(max_length=6)  # "build" (the builder's output) or "system"
    ts = models.DateTimeField()
    text = models.TextField()

    class Meta:
        ordering = ["version", "seq"]
        constraints = [models.UniqueConstraint(fields=["version", "seq"], name="one_build_line_per_seq")]

    def __str__(self) -> str:
        return f"{self.version_id}#{self.seq}"
