"""Jobs, their attempts, their log lines and their connections: PostgreSQL is the source of truth."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from accounts.models import Tenant


class Status(models.TextChoices):
    SCHEDULED = "scheduled"  # a delayed run: waits in PostgreSQL until next_attempt_at
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    RETRYING = "retrying"
    WAITING = "waiting"  # a durable run suspended: no worker, cell or slot until its wait resolves
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    KILLED = "killed"
    CANCELLED = "cancelled"
    DEAD = "dead"
    LOST = "lost"  # attempts only: the worker died or its lease expired
    SUSPENDED = "suspended"  # attempts only: a durable run's execution that stopped at a wait


class Trigger(models.TextChoices):
    """Who or what asked for a job. Blank: not recorded (jobs from before it was, internal tools)."""

    API_KEY = "api_key", "API key"  # the API, with the key in api_key
    DASHBOARD = "dashboard", "dashboard"  # a signed-in user on the dashboard: submitted_by
    SCHEDULE = "schedule", "schedule"  # a schedule's tick, or its "run now": schedule
    ROUTE = "route", "route"  # an HTTP request to a route (routes/): route, and the request as its argument
    PARENT = "parent", "parent run"  # a durable run's invoke or map step: parent, the step's name


# a job is never "lost" or "suspended": its attempts are
JOB_STATUSES = tuple(s for s in Status.values if s not in (Status.LOST, Status.SUSPENDED))
ATTEMPT_STATUSES = (
    Status.RUNNING,
    Status.SUCCEEDED,
    Status.FAILED,
    Status.TIMED_OUT,
    Status.KILLED,
    Status.CANCELLED,
    Status.LOST,
    Status.SUSPENDED,
)
# not running and not finished: cancelled at once, never run again
WAITING = (Status.SCHEDULED, Status.QUEUED, Status.DISPATCHED, Status.RETRYING, Status.WAITING)
FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.KILLED, Status.CANCELLED, Status.DEAD)
EGRESS_MODES = ("none", "allowlist", "public")  # sandbox.egress_policy.EGRESS_MODES
RETRYABLE = (Status.FAILED, Status.TIMED_OUT, Status.KILLED, Status.LOST)
REQUEUEABLE = (Status.DEAD, Status.FAILED, Status.TIMED_OUT, Status.KILLED, Status.CANCELLED)
MIN_PRIORITY, DEFAULT_PRIORITY, MAX_PRIORITY = 0, 5, 9


def _finished_after_started() -> Q:
    return Q(finished_at__isnull=True) | Q(started_at__isnull=True) | Q(finished_at__gte=F("started_at"))


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # no index of its own: job_tenant_created and job_tenant_status lead with tenant (a job's row is
    # rewritten at every transition, and each index costs every rewrite an entry)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="jobs", db_index=False)
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    runtime = models.CharField(max_length=16)
    handler = models.CharField(max_length=100, default="main")
    code = models.TextField()
    args = models.JSONField(default=list)
    timeout_ms = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    max_retries = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    retry_base = models.PositiveIntegerField(default=0)  # attempts already spent when last (re)queued by hand
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    queue_wait_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    log_lines = models.PositiveIntegerField(default=0)
    log_bytes = models.PositiveBigIntegerField(default=0)
    dropped_log_bytes = models.PositiveBigIntegerField(default=0)
    billed_ms = models.PositiveBigIntegerField(default=0)  # every attempt, rounded up to the millisecond
    gb_seconds = models.FloatField(default=0.0)  # memory limit in GB x billed seconds, every attempt
    # an invocation of a deployed function (code is then the version's): what it ran as, kept by name
    # and number after the function is deleted. A queued job with no next_attempt_at waits for its
    # version's build, never dispatched until the build ends.
    function = models.ForeignKey(  # indexed by job_function_created (the function's non-null ids)
        "functions.Function",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_index=False,
    )
    function_version = models.ForeignKey(
        "functions.FunctionVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    function_name = models.CharField(max_length=64, blank=True)
    version_number = models.PositiveIntegerField(null=True, blank=True)
    alias = models.CharField(max_length=64, blank=True)
    callback_url = models.URLField(max_length=2000, blank=True)  # one-off webhook for this job's outcome
    # who or what asked for it (Trigger), with the key's or schedule's name or the user's email as it
    # was then in trigger_name: a run stays identifiable after its key, user or schedule is gone. The
    # links (api_key above, submitted_by, schedule) are for pages; the API shows trigger and its name.
    trigger = models.CharField(max_length=12, choices=Trigger.choices, blank=True, default="")
    trigger_name = models.CharField(max_length=254, blank=True)
    submitted_by = models.ForeignKey(  # indexed by job_submitted_by (the non-null ids)
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    schedule = models.ForeignKey(  # indexed by job_schedule (the non-null ids)
        "schedules.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_index=False,
    )
    # what it may reach and is given (jobs.policy): an inline job's as submitted, a function job's
    # copied from its version (whose own columns the worker reads). db_default: a process of the
    # previous release still inserts jobs while a deploy migrates
    egress_mode = models.CharField(
        max_length=10,
        choices=[(m, m) for m in EGRESS_MODES],
        default="none",
        db_default="none",
        verbose_name="egress",
    )
    egress_allow = models.JSONField(default=list, db_default=[], blank=True)  # sorted host:port patterns
    env = models.JSONField(default=dict, db_default={}, blank=True)  # non-secret configuration: {NAME: value}
    secrets = models.JSONField(default=dict, db_default={}, blank=True)  # {ENV_NAME: a secret's name}
    egress_bytes = models.PositiveBigIntegerField(default=0, db_default=0)  # both ways, every attempt
    route = models.ForeignKey(  # indexed by job_route (the non-null ids); a replay keeps its route
        "routes.Route",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_index=False,
    )
    # a durable run (jobs.services.durable): its handler gets a context, its steps are recorded (Step)
    # and it waits as "waiting" between executions. A child of a durable run's invoke or map step
    # names its parent, the step (its seq) and its place in the map.
    durable = models.BooleanField(default=False, db_default=False)
    parent = models.ForeignKey(  # indexed by job_parent_step (the non-null ids)
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children", db_index=False
    )
    parent_step = models.PositiveIntegerField(null=True, blank=True)
    child_index = models.PositiveIntegerField(null=True, blank=True)
    # flow control (jobs.services.flow): a tenant's waiting jobs are dispatched highest priority first,
    # then by due time and age; an invocation of a function with a concurrency_key stores the key its
    # args gave at submit (null: no key), so filling reads no args
    priority = models.PositiveSmallIntegerField(default=DEFAULT_PRIORITY, db_default=DEFAULT_PRIORITY)
    concurrency_key = models.CharField(max_length=200, null=True, blank=True)
    # placement (jobs.pools, jobs.placement): the worker pool the job is placed in now (its RQ queue);
    # home_pool, overflow and overflow_after_s are what was asked at submit (a job still waiting
    # after overflow_after_s may go to the first overflow pool with room); placed_by says why it is
    # where it is ("home", "overflow after 2.0 s wait")
    pool = models.CharField(max_length=32, default="default", db_default="default")
    home_pool = models.CharField(max_length=32, default="default", db_default="default")
    overflow = ArrayField(models.CharField(max_length=32), default=list, db_default=[], blank=True)
    overflow_after_s = models.FloatField(null=True, blank=True)
    placed_by = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="job_tenant_created"),
            models.Index(fields=["tenant", "status", "-created_at"], name="job_tenant_status"),
            models.Index(fields=["status", "lease_expires_at"], name="job_status_lease"),
            models.Index(
                fields=["next_attempt_at"], name="job_scheduled_due", condition=Q(status="scheduled")
            ),
            models.Index(
                fields=["function", "-created_at"],
                name="job_function_created",
                condition=Q(function__isnull=False),
            ),
            # partial: a user's or schedule's deletion sets these to NULL without reading every job,
            # and the rows of other triggers add no entries
            models.Index(
                fields=["submitted_by"], name="job_submitted_by", condition=Q(submitted_by__isnull=False)
            ),
            models.Index(fields=["schedule"], name="job_schedule", condition=Q(schedule__isnull=False)),
            models.Index(fields=["route"], name="job_route", condition=Q(route__isnull=False)),
            # a tenant's jobs that used egress: its monthly egress budget sums their attempts
            models.Index(fields=["tenant"], name="job_tenant_egress", condition=Q(egress_bytes__gt=0)),
            models.Index(
                fields=["parent", "parent_step", "child_index"],
                name="job_parent_step",
                condition=Q(parent__isnull=False),
            ),
            # the reconciler's look for children left unfinished under a finished parent
            models.Index(fields=["status"], name="job_child_status", condition=Q(parent__isnull=False)),
            # slot filling (jobs.services.dispatch, flow): a tenant's waiting jobs in dispatch order, read
            # from the front and stopped at the free slots however long the backlog. Partial: a job has
            # an entry only while it is queued (its insert), none of its later transitions adds one
            models.Index(
                fields=["tenant", "-priority", "next_attempt_at", "created_at"],
                name="job_waiting_order",
                condition=Q(status="queued"),
            ),
            # the general fill (jobs.services.flow). Lanes: one function's waiting jobs, one key's when it
            # is keyed, in dispatch order; the functions and keys with waiting jobs found by skipping
            # through it. The key as COALESCE(key, ''): an equality on it keeps the order usable (with
            # "IS NULL" PostgreSQL would sort every matching row), and a key's jobs with no key found
            # share the empty key anyway
            models.Index(
                F("tenant"),
                F("function"),
                Coalesce("concurrency_key", Value("")),
                F("priority").desc(),
                F("next_attempt_at"),
                F("created_at"),
                name="job_waiting_lane",
                condition=Q(status="queued", function__isnull=False),
            ),
            # and inline jobs (no function) in dispatch order, apart from the functions' backlogs
            models.Index(
                fields=["tenant", "-priority", "next_attempt_at", "created_at"],
                name="job_waiting_inline",
                condition=Q(status="queued", function__isnull=True),
            ),
            # waiting jobs that may overflow (jobs.services.overflow reads it every tick): usually none
            models.Index(
                fields=["next_attempt_at"],
                name="job_overflow_due",
                condition=Q(status="queued") & ~Q(overflow=[]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="one_job_per_idempotency_key",
            ),
            models.CheckConstraint(condition=Q(status__in=JOB_STATUSES), name="job_status_is_a_job_status"),
            models.CheckConstraint(
                condition=Q(trigger__in=["", *Trigger.values]), name="job_trigger_is_a_trigger"
            ),
            models.CheckConstraint(condition=_finished_after_started(), name="job_finished_after_started"),
            models.CheckConstraint(
                condition=Q(retry_base__lte=F("attempts")), name="job_retry_base_within_attempts"
            ),
            models.CheckConstraint(
                condition=Q(timeout_ms__gt=0, memory_mb__gt=0), name="job_limits_positive"
            ),
            models.CheckConstraint(
                condition=Q(gb_seconds__gte=0) & (Q(duration_ms__isnull=True) | Q(duration_ms__gte=0)),
                name="job_usage_not_negative",
            ),
            models.CheckConstraint(condition=Q(egress_mode__in=EGRESS_MODES), name="job_egress_mode"),
            models.CheckConstraint(
                condition=Q(priority__gte=MIN_PRIORITY, priority__lte=MAX_PRIORITY), name="job_priority_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.runtime}, {self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def egress(self) -> str | list[str]:
        """As the API shows and takes it: "none", "public", or the list of patterns."""
        return list(self.egress_allow) if self.egress_mode == "allowlist" else self.egress_mode


class Attempt(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    worker = models.CharField(max_length=200, blank=True)
    container_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    start_ms = models.FloatField(null=True, blank=True)
    init_ms = models.FloatField(null=True, blank=True)  # a function's module initialisation (a cold cell)
    cpu_ms = models.FloatField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    billed_ms = models.PositiveBigIntegerField(default=0)
    gb_seconds = models.FloatField(default=0.0)
    # what the sandbox reported of its reach (db_default: the claim's INSERT names its columns, and a
    # worker of the previous release still claims while a deploy migrates)
    secret_revisions = models.JSONField(default=list, db_default=[], blank=True)  # [[secret, revision]]
    masked = models.PositiveIntegerField(default=0, db_default=0)  # secret values replaced by ***
    egress_bytes = models.PositiveBigIntegerField(default=0, db_default=0)  # sent and received
    connections_dropped = models.PositiveIntegerField(default=0, db_default=0)  # beyond the recorded cap

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="one_attempt_number_per_job"),
            models.CheckConstraint(
                condition=Q(status__in=ATTEMPT_STATUSES), name="attempt_status_is_an_attempt_status"
            ),
            models.CheckConstraint(
                condition=_finished_after_started(), name="attempt_finished_after_started"
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="attempt_number_from_one"),
            models.CheckConstraint(
                condition=Q(gb_seconds__gte=0)
                & (Q(duration_ms__isnull=True) | Q(duration_ms__gte=0))
                & (Q(cpu_ms__isnull=True) | Q(cpu_ms__gte=0)),
                name="attempt_usage_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.number} ({self.status})"


class LogLine(models.Model):
    class Stream(models.TextChoices):
        STDOUT = "stdout"
        STDERR = "stderr"
        SYSTEM = "system"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_set")
    attempt = models.PositiveIntegerField()
    seq = models.PositiveIntegerField()
    stream = models.CharField(max_length=6, choices=Stream.choices)
    ts = models.DateTimeField()
    text = models.TextField()

    class Meta:
        ordering = ["job", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["job", "seq"], name="one_log_seq_per_job"),
            models.CheckConstraint(
                condition=Q(seq__gte=1, attempt__gte=1), name="log_line_numbered_from_one"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.seq}"


class Connection(models.Model):
    """One connection a job's attempt asked the egress proxy for, as the proxy recorded it: the host
    and port asked for, the address connected to ("" if none), allowed or denied and why, bytes each
    way, when it started and how long it lasted. Numbered per job (``seq`` continues across
    attempts), at most ``EGRESS_CONNECTIONS_RECORDED`` per attempt; purged with its job."""

    class Verdict(models.TextChoices):
        ALLOWED = "allowed"
        DENIED = "denied"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="connection_set", db_index=False)
    attempt = models.PositiveIntegerField()
    seq = models.PositiveIntegerField()
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    address = models.CharField(max_length=64, blank=True)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    reason = models.CharField(max_length=200, blank=True)
    bytes_sent = models.PositiveBigIntegerField(default=0)
    bytes_received = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField(default=0.0)

    class Meta:
        ordering = ["job", "seq"]
        constraints = [
            # its index serves the job's reads and the purge (job first)
            models.UniqueConstraint(fields=["job", "seq"], name="one_connection_seq_per_job"),
            models.CheckConstraint(
                condition=Q(seq__gte=1, attempt__gte=1), name="connection_numbered_from_one"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.seq} {self.host}:{self.port} {self.verdict}"


class Step(models.Model):
    """One recorded step of a durable run, at its position ``seq`` (from 1) in the run's journal.

    ``step``: a function's result (or its error, once its retries are spent), recorded once and replayed
    on every later execution; ``sleep``, ``invoke``, ``map`` and ``event``: a wait, ``waiting`` until its
    outcome (a timer, its children, an event) is recorded here. ``wake_at``: when a waiting step's timer
    fires (a sleep's end, an event wait's timeout, the run's lifetime for children) or a retrying
    step's next try is due. Written by jobs.services.durable only."""

    class Kind(models.TextChoices):
        STEP = "step"
        SLEEP = "sleep"
        INVOKE = "invoke"
        MAP = "map"
        EVENT = "event"

    class State(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        RETRYING = "retrying"  # a try failed and another is due at wake_at
        WAITING = "waiting"
        CANCELLED = "cancelled"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="step_set", db_index=False)
    seq = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=State.choices)
    input = models.JSONField(null=True, blank=True)  # what the step asked for (a wait's terms, retries)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=1)
    size = models.PositiveIntegerField(default=0)  # bytes of its record (input, result, error as JSON)
    wake_at = models.DateTimeField(null=True, blank=True)
    event = models.CharField(max_length=200, blank=True)  # an event wait: the event's name and key
    key = models.CharField(max_length=255, blank=True)
    event_id = models.BigIntegerField(null=True, blank=True)  # the event that resolved it
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "seq"]
        indexes = [
            models.Index(
                fields=["wake_at"],
                name="step_wake_due",
                condition=Q(status__in=["waiting", "retrying"], wake_at__isnull=False),
            ),
            models.Index(
                fields=["event", "key"],
                name="step_event_waiting",
                condition=Q(status="waiting", kind="event"),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["job", "seq"], name="one_step_seq_per_job"),
            models.UniqueConstraint(fields=["job", "name"], name="one_step_name_per_job"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="step_numbered_from_one"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.seq} {self.name} ({self.kind}, {self.status})"


class Event(models.Model):
    """An event posted to ``POST /api/v1/events``: it resolves the tenant's runs waiting for its name and
    key, and is kept (``EVENT_RETENTION_S``) for a run that asks for it later (its wait matches events
    received since the run began)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=200)
    key = models.CharField(max_length=255, blank=True)
    data = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["received_at"]
        indexes = [models.Index(fields=["tenant", "name", "key", "received_at"], name="event_lookup")]

    def __str__(self) -> str:
        return f"{self.name}:{self.key} @ {self.received_at}"
