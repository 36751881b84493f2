"""Submission: validate a spec against the tenant's caps, pass admission, honour Idempotency-Key,
insert the row; dispatch follows after the commit."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import ratelimit
from accounts.models import ApiKey, Tenant
from lambdasite.exceptions import ApplicationError, PayloadTooLarge, ValidationFailed

from .. import metrics, policy
from ..exceptions import IdempotencyBusy, IdempotencyConflict
from ..models import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, Job, Status, Trigger
from ..placement import Placement, resolve
from . import dispatch, notify
from .admission import tenant_admit

log = logging.getLogger("lambdasite.jobs")


@dataclass(frozen=True)
class JobSpec:
    runtime: str
    code: str
    args: list = field(default_factory=list)
    handler: str = "main"
    timeout_ms: int | None = None
    memory_mb: int | None = None
    max_retries: int | None = None
    # an invocation of a deployed function: code and handler are the version's (code is not copied)
    function_id: int | None = None
    version_id: int | None = None
    function_name: str = ""
    version_number: int | None = None
    alias: str = ""
    held: bool = False  # its version is still building: not dispatched until the build ends
    invoked_as: str = ""  # "name:qualifier" as requested: what Idempotency-Key compares, not the version
    run_at: datetime | None = None  # a delayed run: waits as "scheduled" until then (None or past: now)
    delay_s: int | None = None  # as asked (run_at is derived from it): what Idempotency-Key compares
    callback_url: str = ""  # a one-off webhook for this job's outcome
    # what it may reach and is given (jobs.policy): an inline job's checked here; a function job's
    # are its version's, checked at deploy (invoke fills them in)
    egress: str | list = "none"  # "none", "public" or a list of "host:port" patterns
    env: dict = field(default_factory=dict)  # {NAME: value}
    secrets: dict = field(default_factory=dict)  # {ENV_NAME: secret name}
    durable: bool = False  # a durable run: its handler gets a context (jobs.services.steps)
    priority: int = DEFAULT_PRIORITY  # 0-9: a tenant's waiting jobs go highest first (jobs.services.flow)
    # what the function's concurrency_key found in args (invoke evaluates it): its lane, or None
    concurrency_key: str | None = None
    # where it runs (jobs.placement): as asked (None: not given), and its function's (invoke fills it in)
    placement: Placement | None = None
    function_placement: Placement | None = None


@dataclass(frozen=True)
class Origin:
    """Who or what asked for a job, recorded on it (``Job.trigger``): an API key, a signed-in user,
    a schedule. Not part of the spec: a replayed Idempotency-Key answers with the first job, whoever
    repeats it. The blank origin records nothing (internal tools)."""

    trigger: str = ""
    name: str = ""
    user_id: int | None = None
    schedule_id: int | None = None
    route_id: Any = None  # a route's request, or a replay of one (whoever replays it)

    @classmethod
    def of_key(cls, api_key: ApiKey | None) -> Origin:
        return cls(Trigger.API_KEY, api_key.name) if api_key is not None else cls()

    @classmethod
    def of_user(cls, user) -> Origin:
        return cls(Trigger.DASHBOARD, user.email or user.get_username(), user_id=user.pk)

    @classmethod
    def of_schedule(cls, schedule) -> Origin:
        return cls(Trigger.SCHEDULE, schedule.name, schedule_id=schedule.pk)

    @classmethod
    def of_route(cls, route_id, path: str) -> Origin:
        return cls(Trigger.ROUTE, path, route_id=route_id)

    def columns(self) -> dict:
        return {
            "trigger": self.trigger,
            "trigger_name": self.name[:254],
            "submitted_by_id": self.user_id,
            "schedule_id": self.schedule_id,
            "route_id": self.route_id,
        }


# what an invocation resolved (an alias's canary may pick another version on a retry) is not compared
_RESOLVED = ("version_id", "version_number", "held", "handler", "alias")
# left out of the hash when default (a body that says nothing of them hashes as before they existed)
_REACH_DEFAULTS = {"egress": "none", "env": {}, "secrets": {}, "durable": False}
_DEFAULTS = {**_REACH_DEFAULTS, "priority": DEFAULT_PRIORITY, "placement": None}
# derived from the body (the function's concurrency_key over args, its placement): never part of the request
_DERIVED = ("concurrency_key", "function_placement")
_FUNCTION_FIELDS = (
    "function_id",
    "function_name",
    "invoked_as",
    "run_at",
    "delay_s",
    "callback_url",
    *_RESOLVED,
)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def job_spec_validate(*, tenant: Tenant, spec: JobSpec) -> JobSpec:
    """Check a spec against the tenant's caps and fill in defaults; raises 400/403/413 errors naming
    the field."""
    quota = tenant.quota
    quota.check_code(spec.code)
    args_bytes = _json_size(spec.args)
    if args_bytes > quota.max_args_bytes:
        raise PayloadTooLarge(
            f"args is {args_bytes} bytes, over this tenant's cap of {quota.max_args_bytes}",
            details={"field": "args", "size": args_bytes, "limit": quota.max_args_bytes},
        )
    timeout_ms = spec.timeout_ms if spec.timeout_ms is not None else quota.default_timeout_ms()
    memory_mb = spec.memory_mb if spec.memory_mb is not None else quota.default_memory_mb()
    max_retries = spec.max_retries if spec.max_retries is not None else quota.default_max_retries
    quota.check_limits(timeout_ms=timeout_ms, memory_mb=memory_mb, max_retries=max_retries)
    if spec.run_at is not None:
        horizon = timezone.now() + timedelta(seconds=settings.JOB_MAX_DELAY_S)
        if spec.run_at > horizon:
            raise ValidationFailed(
                f"run_at: at most {settings.JOB_MAX_DELAY_S} s ahead",
                details={"fields": {"run_at": [f"at most {settings.JOB_MAX_DELAY_S} s ahead"]}},
            )
    if not (isinstance(spec.priority, int) and MIN_PRIORITY <= spec.priority <= MAX_PRIORITY):
        raise ValidationFailed(
            f"priority: must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}",
            details={"fields": {"priority": [f"from {MIN_PRIORITY} to {MAX_PRIORITY}"]}},
        )
    spec = _reach_checked(tenant, spec)
    quota.check_pools(resolve(spec.placement, spec.function_placement).names())  # (the quota may change)
    return dataclasses.replace(spec, timeout_ms=timeout_ms, memory_mb=memory_mb, max_retries=max_retries)


def _reach_checked(tenant: Tenant, spec: JobSpec) -> JobSpec:
    """An inline job's egress (within max_egress), env and secret bindings, normalised (jobs.policy,
    the rule a function version's follow at deploy); a function job's are its version's, as given."""
    if spec.function_id is not None:
        return spec
    reach = policy.reach_check(
        tenant=tenant, egress_value=spec.egress, env_value=spec.env, secrets_value=spec.secrets
    )
    return dataclasses.replace(spec, egress=reach.egress, env=reach.env, secrets=reach.secrets)


def request_hash(spec: JobSpec) -> str:
    """What an Idempotency-Key compares: the request as given (a job that reaches nothing hashes as
    jobs did before they could reach anything; an invocation's reach is its version's, not compared)."""
    fields = {
        k: v
        for k, v in spec.__dict__.items()
        if k not in _DERIVED and (k not in _FUNCTION_FIELDS or v not in (None, "", False))
    }
    fields = {k: v for k, v in fields.items() if k not in _DEFAULTS or v != _DEFAULTS[k]}
    if spec.invoked_as:
        fields = {k: v for k, v in fields.items() if k not in _RESOLVED and k not in _REACH_DEFAULTS}
    if fields.get("placement") is not None:
        fields["placement"] = fields["placement"].body()
    if spec.delay_s is not None:
        fields.pop("run_at", None)
    elif fields.get("run_at") is not None:
        fields["run_at"] = fields["run_at"].isoformat()
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _new_job(tenant: Tenant, api_key: ApiKey | None, spec: JobSpec, origin: Origin, **extra) -> Job:
    return Job(
        tenant=tenant,
        api_key=api_key,
        runtime=spec.runtime,
        handler=spec.handler,
        code=spec.code,
        args=spec.args,
        timeout_ms=spec.timeout_ms,
        memory_mb=spec.memory_mb,
        max_retries=spec.max_retries,
        **_when(spec),
        function_id=spec.function_id,
        function_version_id=spec.version_id,
        function_name=spec.function_name,
        version_number=spec.version_number,
        alias=spec.alias,
        callback_url=spec.callback_url,
        durable=spec.durable,
        priority=spec.priority,
        concurrency_key=spec.concurrency_key,
        **_reach_columns(spec),
        **resolve(spec.placement, spec.function_placement).job_columns(),
        **origin.columns(),
        **extra,
    )


def _reach_columns(spec: JobSpec) -> dict:
    allowlist = isinstance(spec.egress, (list, tuple))
    return {
        "egress_mode": "allowlist" if allowlist else spec.egress,
        "egress_allow": list(spec.egress) if allowlist else [],
        "env": dict(spec.env),
        "secrets": dict(spec.secrets),
    }


def _when(spec: JobSpec) -> dict:
    """A delayed run waits as scheduled; an invocation of a version still building is held (no
    next_attempt_at) until its build ends; anything else is due now."""
    now = timezone.now()
    if spec.run_at is not None and spec.run_at > now:
        return {"status": Status.SCHEDULED, "next_attempt_at": spec.run_at}
    return {"next_attempt_at": None if spec.held else now}


def _submitted_after_commit(tenant: Tenant, jobs: list[Job]) -> None:
    for job in jobs:
        notify.status_after_commit(job)  # before the dispatch below: pages see queued, then dispatched
    if any(job.status == Status.QUEUED and job.next_attempt_at is not None for job in jobs):
        dispatch.fill_in_transaction(tenant.id)  # in this transaction: one commit, no pre-check
    else:
        dispatch.fill_after_commit(tenant.id)  # scheduled or held: older waiting jobs may still go
    per_runtime = Counter(job.runtime for job in jobs)
    transaction.on_commit(lambda: [metrics.count_submitted(runtime, n) for runtime, n in per_runtime.items()])


def job_submit(
    *,
    tenant: Tenant,
    api_key: ApiKey | None,
    spec: JobSpec,
    idempotency_key: str | None = None,
    origin: Origin | None = None,
    digest: str | None = None,
    also: ratelimit.Bucket | None = None,
) -> tuple[Job, bool]:
    """Create a job (a repeated Idempotency-Key with the same body gets the first). -> (job, created)
    ``origin``: who asked for it; by default the API key (if any). ``digest``: what a repeated key
    must match, when not the spec's hash (a route's delivery: its body, not its re-signed headers);
    ``also``: a second rate bucket admission takes (a route's)."""
    origin = origin or Origin.of_key(api_key)
    spec = job_spec_validate(tenant=tenant, spec=spec)
    digest = (digest or request_hash(spec)) if idempotency_key else ""
    if idempotency_key and (match := _idempotent_match(tenant, idempotency_key, digest)) is not None:
        return match, False  # a replay is answered before admission: it costs no token
    tenant_admit(tenant=tenant, also=also)
    for _ in range(3):
        try:
            with transaction.atomic():
                job = _new_job(
                    tenant, api_key, spec, origin, idempotency_key=idempotency_key, request_hash=digest
                )
                job.save(force_insert=True)
                _submitted_after_commit(tenant, [job])
            notify.log_event("job submitted", job, event="submitted", runtime=job.runtime)
            return job, True
        except IntegrityError:
            if not idempotency_key:
                raise
            existing = _idempotent_match(tenant, idempotency_key, digest)
            if existing is not None:
                return existing, False
    raise IdempotencyBusy("could not record the job; retry the request")


def _idempotent_match(tenant: Tenant, key: str, digest: str) -> Job | None:
    """The job an Idempotency-Key already names; an expired key is released (None: insert again)."""
    existing = Job.objects.filter(tenant=tenant, idempotency_key=key).first()
    if existing is None:
        return None  # deleted in between: try the insert again
    if existing.created_at < timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_H):
        Job.objects.filter(pk=existing.pk).update(idempotency_key=None)
        return None
    if existing.request_hash != digest:
        raise IdempotencyConflict(
            "this Idempotency-Key was used with a different request body",
            details={"job_id": str(existing.id)},
        )
    return existing


@transaction.atomic
def job_submit_batch(
    *, tenant: Tenant, api_key: ApiKey | None, specs: list[JobSpec], origin: Origin | None = None
) -> list[Job]:
    """All or nothing: every spec is validated before any job is written."""
    origin = origin or Origin.of_key(api_key)
    validated = []
    for index, spec in enumerate(specs):
        try:
            validated.append(job_spec_validate(tenant=tenant, spec=spec))
        except ApplicationError as exc:
            exc.details = {**exc.details, "index": index}
            exc.message = f"jobs[{index}]: {exc.message}"
            raise
    tenant_admit(tenant=tenant, count=len(validated))
    jobs = Job.objects.bulk_create([_new_job(tenant, api_key, spec, origin) for spec in validated])
    _submitted_after_commit(tenant, jobs)
    log.info("batch submitted", extra={"event": "submitted", "tenant": tenant.slug, "count": len(jobs)})
    return jobs
