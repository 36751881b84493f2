"""What the API says about a job, for every app that starts or shows one: the submit and batch
input (``JobSubmitSerializer``), the response shapes (``JobSerializer``, ``JobDetailSerializer``:
declared for the schema, rendered by ``jobs.rendering``), and the reply to an accepted job with its
``?wait`` hold. The jobs API and the functions API (invoke, a batch of invocations) both answer
with these."""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lambdasite.api.contract import Hold, Reply
from lambdasite.api.fields import (
    ArgsField,
    CodeField,
    EgressField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    env_field,
    later_fields,
    memory_field,
    secrets_field,
    timeout_field,
    when_from,
)
from sandbox import RUNTIMES

from . import billing, completion, rendering, selectors, waiting
from .models import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, Attempt, Job, Trigger
from .placement import Placement
from .placement_fields import PlacementSchema, placement_fields, placement_from

HANDLER_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
_HANDLER = re.compile(HANDLER_RE)


def priority_field() -> StrictIntegerField:
    """A job's or an invocation's priority (left out: the default, and the body hashes as before)."""
    return StrictIntegerField(
        required=False,
        min_value=MIN_PRIORITY,
        max_value=MAX_PRIORITY,
        help_text=f"{MIN_PRIORITY}-{MAX_PRIORITY}, default {DEFAULT_PRIORITY}: the tenant's waiting jobs are "
        "dispatched highest first (then by due time and age); other tenants are not affected",
    )


class JobSubmitSerializer(StrictSerializer):
    runtime = serializers.ChoiceField(choices=RUNTIMES, help_text="python or node")
    code = CodeField(help_text="source defining the handler function")
    args = ArgsField(required=False, help_text="JSON array of positional arguments")
    handler = StrictCharField(required=False, default="main", max_length=100)
    timeout_ms = timeout_field(help_text="wall-clock limit per attempt")
    memory_mb = memory_field(help_text="memory limit (swap is not allowed)")
    max_retries = StrictIntegerField(required=False, min_value=0)
    run_at, delay_s, callback_url = later_fields()
    egress = EgressField(
        required=False, help_text="where the job may connect, within the tenant's max_egress (default: none)"
    )
    env = env_field()
    secrets = secrets_field(help_text="; each a secret of this tenant (PUT /api/v1/secrets/NAME)")
    durable = StrictBooleanField(
        required=False,
        default=False,
        help_text="a durable run: the handler gets a context first (ctx.step, ctx.sleep, ctx.invoke, "
        "ctx.map, ctx.wait_for_event)",
    )
    priority = priority_field()
    pool, placement = placement_fields()

    def validate(self, attrs):
        return placement_from(when_from(attrs))

    def validate_handler(self, value: str) -> str:
        if not _HANDLER.match(value):
            raise serializers.ValidationError("must be an identifier such as main")
        return value


class BatchSubmitSerializer(serializers.Serializer):
    jobs = JobSubmitSerializer(many=True, allow_empty=False)

    def validate_jobs(self, value):
        limit = self.context.get("max", 100)
        if len(value) > limit:
            raise serializers.ValidationError(f"at most {limit} jobs per batch")
        return value

    def to_internal_value(self, data):
        if (
            isinstance(data, dict)
            and isinstance(data.get("jobs"), list)
            and len(data["jobs"]) > self.context.get("max", 100)
        ):
            raise serializers.ValidationError(
                {"jobs": [f"at most {self.context.get('max', 100)} jobs per batch"]}
            )
        return super().to_internal_value(data)


class SecretRevisionSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="the tenant's secret")
    revision = serializers.IntegerField(help_text="the revision the attempt was given")


class AttemptSerializer(serializers.ModelSerializer):
    secret_revisions = serializers.SerializerMethodField(
        help_text="the revisions of the bound secrets this attempt was given (names, never values)"
    )
    masked = serializers.IntegerField(
        read_only=True, help_text="secret values replaced by *** in its output and error"
    )
    egress_bytes = serializers.IntegerField(
        read_only=True, help_text="bytes sent and received through egress"
    )
    connections_dropped = serializers.IntegerField(
        read_only=True, help_text="connections beyond what is recorded per attempt (counted, not listed)"
    )

    class Meta:
        model = Attempt
        fields = [
            "number",
            "status",
            "worker",
            "started_at",
            "finished_at",
            "duration_ms",
            "start_ms",
            "init_ms",
            "cpu_ms",
            "billed_ms",
            "gb_seconds",
            "exit_code",
            "error",
            "egress_bytes",
            "connections_dropped",
            "secret_revisions",
            "masked",
        ]

    @extend_schema_field(SecretRevisionSerializer(many=True))
    def get_secret_revisions(self, attempt: Attempt) -> list[dict]:
        return rendering.secret_revisions_body(attempt.secret_revisions)


class TriggerSerializer(serializers.Serializer):
    """Who or what asked for a job (declared for the schema)."""

    kind = serializers.ChoiceField(
        choices=Trigger.values,
        help_text="api_key: submitted with an API key; dashboard: by a signed-in user; "
        "schedule: by a schedule's tick or its run now",
    )
    name = serializers.CharField(
        help_text="the key's name, the user's email or the schedule's name, as it was when the job was made"
    )


class JobSerializer(serializers.ModelSerializer):
    """Declares the response shape (for the schema and validation of it in tests); the rendering
    itself is hand-written in jobs.rendering, because building a ModelSerializer's fields on every
    response was a measured share of each submit's CPU. test_serializers checks both give the same
    output."""

    limits = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()
    cost = serializers.SerializerMethodField(help_text="estimated cost of every attempt so far")
    function = serializers.SerializerMethodField(
        help_text="the deployed function invoked (null: inline code)"
    )
    version = serializers.SerializerMethodField(help_text="the function version it ran as")
    alias = serializers.SerializerMethodField(help_text="the alias it was invoked through, if any")
    callback_url = serializers.SerializerMethodField(help_text="the one-off webhook for its outcome, if any")
    trigger = serializers.SerializerMethodField(
        help_text="who or what asked for the job (null: not recorded, for jobs from before it was)"
    )
    egress = EgressField(read_only=True, help_text="where it may connect (a function job: its version's)")
    env = serializers.SerializerMethodField(help_text="non-secret configuration, {NAME: value}")
    secrets = serializers.SerializerMethodField(
        help_text="secret bindings, {ENV_NAME: secret name}: names only, never values"
    )
    egress_bytes = serializers.IntegerField(
        read_only=True, help_text="bytes sent and received through egress, every attempt"
    )
    durable = serializers.BooleanField(read_only=True, help_text="a durable run (its steps: links.steps)")
    parent = serializers.SerializerMethodField(
        help_text="the durable run whose invoke or map step started this job (null: none)"
    )
    priority = serializers.IntegerField(
        read_only=True, help_text="0-9: a tenant's waiting jobs are dispatched highest first (default 5)"
    )
    concurrency_key = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="the key its function's concurrency_key found in its args (null: no key)",
    )
    pool = serializers.CharField(read_only=True, help_text="the worker pool it is placed in (or ran in)")
    placement = serializers.SerializerMethodField(help_text="where it asked to run (its own, its function's)")
    placed_by = serializers.CharField(
        read_only=True,
        help_text="why it is in that pool: home, or 'overflow after 2.0 s wait' ('' until dispatched)",
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "runtime",
            "handler",
            "limits",
            "max_retries",
            "result",
            "error",
            "exit_code",
            "attempts",
            "cancel_requested",
            "next_attempt_at",
            "created_at",
            "started_at",
            "finished_at",
            "queue_wait_ms",
            "duration_ms",
            "billed_ms",
            "gb_seconds",
            "cost",
            "log_lines",
            "log_bytes",
            "dropped_log_bytes",
            "function",
            "version",
            "alias",
            "callback_url",
            "trigger",
            "egress",
            "env",
            "secrets",
            "egress_bytes",
            "durable",
            "parent",
            "priority",
            "concurrency_key",
            "pool",
            "placement",
            "placed_by",
            "links",
        ]

    def to_representation(self, job: Job) -> dict:
        return rendering.job_body(job)

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_parent(self, job: Job) -> str | None:
        return str(job.parent_id) if job.parent_id else None

    @extend_schema_field(PlacementSchema)
    def get_placement(self, job: Job) -> dict:
        return Placement.of(job).body()

    def get_env(self, job: Job) -> dict[str, str]:
        return dict(sorted(job.env.items()))

    def get_secrets(self, job: Job) -> dict[str, str]:
        return dict(sorted(job.secrets.items()))

    def get_function(self, job: Job) -> str | None:
        return job.function_name or None

    def get_version(self, job: Job) -> int | None:
        return job.version_number

    def get_alias(self, job: Job) -> str | None:
        return job.alias or None

    def get_callback_url(self, job: Job) -> str | None:
        return job.callback_url or None

    @extend_schema_field(TriggerSerializer(allow_null=True))
    def get_trigger(self, job: Job) -> dict | None:
        return rendering.trigger_body(job)

    def get_cost(self, job: Job) -> float:
        return billing.job_cost(job)

    def get_limits(self, job: Job) -> dict:
        return {"timeout_ms": job.timeout_ms, "memory_mb": job.memory_mb}

    def get_links(self, job: Job) -> dict:
        base = rendering.job_path(job.id)
        return {
            "self": base,
            "logs": f"{base}/logs",
            "connections": f"{base}/connections",
            "steps": f"{base}/steps",
        }


class ChildSerializer(serializers.Serializer):
    """One of a durable run's children (declared for the schema)."""

    id = serializers.UUIDField()
    status = serializers.CharField()
    step = serializers.IntegerField(
        allow_null=True, help_text="the position of the step that started it (null: cut by a retry)"
    )
    index = serializers.IntegerField(allow_null=True, help_text="its place in the step's map (0 for invoke)")


class JobDetailSerializer(JobSerializer):
    attempt_history = AttemptSerializer(source="attempt_set", many=True, read_only=True)
    children = serializers.SerializerMethodField(
        help_text="a durable run's children (its first 1000, by step and place)"
    )
    children_count = serializers.SerializerMethodField(help_text="how many children it has")
    waiting_reason = serializers.SerializerMethodField(
        help_text="while it waits (scheduled, queued, dispatched, retrying): why, read now, e.g. "
        "'tenant concurrency 4/4', 'function max_concurrency 5/5', 'key store_id=42: 1/1 in use', "
        "'no free worker'; null otherwise"
    )

    class Meta(JobSerializer.Meta):
        fields = JobSerializer.Meta.fields + [
            "code",
            "args",
            "attempt_history",
            "children",
            "children_count",
            "waiting_reason",
        ]

    @extend_schema_field(ChildSerializer(many=True))
    def get_children(self, job: Job) -> list[dict]:
        return [rendering.child_body(*child) for child in selectors.job_children(job=job)[0]]

    def get_children_count(self, job: Job) -> int:
        return selectors.job_children(job=job)[1]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_waiting_reason(self, job: Job) -> str | None:
        return waiting.waiting_reason(job)

    def to_representation(self, job: Job) -> dict:
        return rendering.job_detail_body(job, job.attempt_set.all())


def job_reply(job: Job, created: bool, *, wait: float = 0.0) -> Reply:
    """A created job's 202 (held up to ``wait`` seconds for its outcome), or an idempotent replay's
    200 with the first job's detail."""
    if not created:
        return Reply(200, rendering.job_detail_body(job, job.attempt_set.all()))
    body = rendering.job_body(job)
    return Reply(202, body, {"Location": body["links"]["self"]}, hold=_outcome(job, wait))


def _outcome(job: Job, wait: float) -> Hold | None:
    if wait <= 0:
        return None
    job_id, tenant_id = str(job.id), job.tenant_id
    return Hold(
        seconds=wait,
        finished=lambda seconds: completion.wait_finished(job_id, seconds),
        read=lambda: job_detail_body(tenant_ids=[tenant_id], job_id=job_id),
    )


def job_detail_body(*, tenant_ids, job_id) -> dict | None:
    """A job's detail as the API shows it, or None (not one of these tenants' jobs)."""
    job = selectors.job_get(tenant_ids=tenant_ids, job_id=job_id)
    return rendering.job_detail_body(job, job.attempt_set.all()) if job is not None else None
