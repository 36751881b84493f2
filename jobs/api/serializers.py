"""Request validation and response shapes of the jobs API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from lambdasite.parsers import args_problem, qualifier_problem
from sandbox import RUNTIMES

from .. import billing, rendering
from ..models import Attempt, Job, LogLine

HANDLER_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"


class StrictCharField(serializers.CharField):
    """A string and only a string: 123 is a type error, not "123"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


INT_MAX = 2**31 - 1  # PostgreSQL's integer: a larger number would fail in the database, a 500


class StrictIntegerField(serializers.IntegerField):
    """An integer and only an integer: "5000", 5.5 and true are type errors; never beyond what an
    integer column holds, unless a field says otherwise."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_value", INT_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with its offset: a time without one is ambiguous, so refused."""

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601 with an offset")
        parsed = super().to_internal_value(value)
        if "T" in value and not any(mark in value.split("T", 1)[1] for mark in ("Z", "z", "+", "-")):
            raise serializers.ValidationError("must include an offset, e.g. 2027-01-01T02:00:00+01:00 or …Z")
        return parsed


class ArgsField(serializers.JSONField):
    """Positional arguments: a JSON array that can be stored and served back (lambdasite.parsers'
    ``args_problem``: bounded depth, finite numbers, no NUL or lone surrogate). Checked before
    JSONField's own ``json.dumps``, which would recurse once per level of whatever it is given."""

    def to_internal_value(self, data):
        problem = args_problem(data)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return data


class QualifierField(StrictCharField):
    """An alias name or a version number (lambdasite.parsers' ``qualifier_problem``); blank: none."""

    def __init__(self, **kwargs):
        super().__init__(max_length=64, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problem = qualifier_problem(value) if value else None
        if problem is not None:
            raise serializers.ValidationError(problem)
        return value


class WebhookURLField(serializers.URLField):
    """A URL that may receive webhooks (public http(s) unless WEBHOOK_ALLOW_PRIVATE_NETWORKS)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=2000, **kwargs)

    def to_internal_value(self, data):
        from lambdasite import ssrf

        url = super().to_internal_value(data)
        try:
            ssrf.check_literal(url)  # no DNS on the submit path: the name is checked at delivery
        except ssrf.Refused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return url


def when_from(attrs: dict) -> dict:
    """``delay_s`` or ``run_at`` (not both) as the job's ``run_at``."""
    from datetime import timedelta

    from django.utils import timezone

    if "run_at" in attrs and "delay_s" in attrs:
        raise serializers.ValidationError({"run_at": ["give run_at or delay_s, not both"]})
    if "delay_s" in attrs:
        if attrs["delay_s"] > settings.JOB_MAX_DELAY_S:  # also keeps the date arithmetic in range
            raise serializers.ValidationError({"delay_s": [f"at most {settings.JOB_MAX_DELAY_S} s ahead"]})
        attrs["run_at"] = timezone.now() + timedelta(seconds=attrs["delay_s"])
    return attrs


class JobSubmitSerializer(serializers.Serializer):
    runtime = serializers.ChoiceField(choices=RUNTIMES, help_text="python or node")
    code = StrictCharField(trim_whitespace=False, help_text="source defining the handler function")
    args = ArgsField(required=False, help_text="JSON array of positional arguments")
    handler = StrictCharField(required=False, default="main", max_length=100)
    timeout_ms = StrictIntegerField(
        required=False, min_value=settings.JOB_MIN_TIMEOUT_MS, help_text="wall-clock limit per attempt"
    )
    memory_mb = StrictIntegerField(
        required=False, min_value=settings.JOB_MIN_MEMORY_MB, help_text="memory limit (swap is not allowed)"
    )
    max_retries = StrictIntegerField(required=False, min_value=0)
    run_at = AwareDateTimeField(required=False, help_text="run later: ISO 8601 with an offset")
    delay_s = StrictIntegerField(required=False, min_value=0, help_text="run later: seconds from now")
    callback_url = WebhookURLField(required=False, help_text="signed POST of the job when it ends")

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)

    def validate(self, attrs):
        return when_from(attrs)

    def validate_code(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("may not be blank")
        if "\x00" in value:
            raise serializers.ValidationError("may not contain NUL characters")
        return value

    def validate_handler(self, value: str) -> str:
        import re

        if not re.match(HANDLER_RE, value):
            raise serializers.ValidationError("must be an identifier such as main")
        return value


class FunctionItemSerializer(serializers.Serializer):
    """A batch item that invokes a deployed function instead of sending code."""

    function = StrictCharField(max_length=64, help_text="a deployed function's name")
    qualifier = QualifierField(required=False, help_text="alias or version number")
    args = ArgsField(required=False)
    timeout_ms = StrictIntegerField(required=False, min_value=settings.JOB_MIN_TIMEOUT_MS)
    memory_mb = StrictIntegerField(required=False, min_value=settings.JOB_MIN_MEMORY_MB)
    run_at = AwareDateTimeField(required=False)
    delay_s = StrictIntegerField(required=False, min_value=0)
    callback_url = WebhookURLField(required=False)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)

    def validate(self, attrs):
        return when_from(attrs)


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


class AttemptSerializer(serializers.ModelSerializer):
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
        ]


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
            "links",
        ]

    def to_representation(self, job: Job) -> dict:
        return rendering.job_body(job)

    def get_function(self, job: Job) -> str | None:
        return job.function_name or None

    def get_version(self, job: Job) -> int | None:
        return job.version_number

    def get_alias(self, job: Job) -> str | None:
        return job.alias or None

    def get_callback_url(self, job: Job) -> str | None:
        return job.callback_url or None

    def get_cost(self, job: Job) -> float:
        return billing.job_cost(job)

    def get_limits(self, job: Job) -> dict:
        return {"timeout_ms": job.timeout_ms, "memory_mb": job.memory_mb}

    def get_links(self, job: Job) -> dict:
        base = rendering.job_path(job.id)
        return {"self": base, "logs": f"{base}/logs"}


class JobDetailSerializer(JobSerializer):
    attempt_history = AttemptSerializer(source="attempt_set", many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = JobSerializer.Meta.fields + ["code", "args", "attempt_history"]

    def to_representation(self, job: Job) -> dict:
        return rendering.job_detail_body(job, job.attempt_set.all())


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = LogLine
        fields = ["seq", "attempt", "stream", "ts", "text"]


class LogPageSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    job_status = serializers.CharField()
    lines = LogLineSerializer(many=True)
    next_after = serializers.IntegerField()
    complete = serializers.BooleanField(help_text="true once the job is finished and every line was returned")


class RuntimeSerializer(serializers.Serializer):
    name = serializers.CharField()
    language = serializers.CharField()
    version = serializers.CharField()
    defaults = serializers.DictField()
    caps = serializers.DictField()
    example = serializers.CharField()
    notes = serializers.CharField()
