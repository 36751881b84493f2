"""Request validation and response shapes of the jobs API."""

from __future__ import annotations

import json
from datetime import UTC

from django.urls import reverse
from rest_framework import serializers

from sandbox import RUNTIMES

from .. import billing
from ..models import Attempt, Job, LogLine

HANDLER_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
MAX_ARGS_DEPTH = 64


class StrictCharField(serializers.CharField):
    """A string and only a string: 123 is a type error, not "123"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An integer and only an integer: "5000", 5.5 and true are type errors."""

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


class WebhookURLField(serializers.URLField):
    """A URL that may receive webhooks (public http(s) unless WEBHOOK_ALLOW_PRIVATE_NETWORKS)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=2000, **kwargs)

    def to_internal_value(self, data):
        from webhooks import ssrf

        url = super().to_internal_value(data)
        try:
            ssrf.resolve(url)
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
        attrs["run_at"] = timezone.now() + timedelta(seconds=attrs["delay_s"])
    return attrs


class JobSubmitSerializer(serializers.Serializer):
    runtime = serializers.ChoiceField(choices=RUNTIMES, help_text="python or node")
    code = StrictCharField(trim_whitespace=False, help_text="source defining the handler function")
    args = serializers.JSONField(required=False, help_text="JSON array of positional arguments")
    handler = StrictCharField(required=False, default="main", max_length=100)
    timeout_ms = StrictIntegerField(required=False, min_value=100, help_text="wall-clock limit per attempt")
    memory_mb = StrictIntegerField(
        required=False, min_value=32, help_text="memory limit (swap is not allowed)"
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

    def validate_args(self, value):
        if value is None:
            return []
        if not isinstance(value, list):
            raise serializers.ValidationError("must be a JSON array, e.g. [2, 3]")
        if _depth(value) > MAX_ARGS_DEPTH:
            raise serializers.ValidationError(f"may not be nested deeper than {MAX_ARGS_DEPTH} levels")
        if "\\u0000" in json.dumps(value):
            raise serializers.ValidationError("may not contain NUL characters")
        return value


def _depth(value, level: int = 1) -> int:
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    return level


class FunctionItemSerializer(serializers.Serializer):
    """A batch item that invokes a deployed function instead of sending code."""

    function = StrictCharField(max_length=64, help_text="a deployed function's name")
    qualifier = StrictCharField(required=False, max_length=64, help_text="alias or version number")
    args = serializers.JSONField(required=False)
    timeout_ms = StrictIntegerField(required=False, min_value=100)
    memory_mb = StrictIntegerField(required=False, min_value=32)
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

    validate_args = JobSubmitSerializer.validate_args


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


def _dt(value):
    """A datetime exactly as DRF's DateTimeField renders it (ISO 8601 in UTC, with Z)."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _float(value):
    return None if value is None else float(value)


def _attempt(attempt: Attempt) -> dict:
    return {
        "number": attempt.number,
        "status": attempt.status,
        "worker": attempt.worker,
        "started_at": _dt(attempt.started_at),
        "finished_at": _dt(attempt.finished_at),
        "duration_ms": _float(attempt.duration_ms),
        "start_ms": _float(attempt.start_ms),
        "init_ms": _float(attempt.init_ms),
        "cpu_ms": _float(attempt.cpu_ms),
        "billed_ms": attempt.billed_ms,
        "gb_seconds": _float(attempt.gb_seconds),
        "exit_code": attempt.exit_code,
        "error": attempt.error,
    }


class JobSerializer(serializers.ModelSerializer):
    """Declares the response shape (for the schema and validation of it in tests); the rendering
    itself is hand-written, because building a ModelSerializer's fields on every response was a
    measured share of each submit's CPU. test_serializers checks both give the same output."""

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
        return {
            "id": str(job.id),
            "status": job.status,
            "runtime": job.runtime,
            "handler": job.handler,
            "limits": self.get_limits(job),
            "max_retries": job.max_retries,
            "result": job.result,
            "error": job.error,
            "exit_code": job.exit_code,
            "attempts": job.attempts,
            "cancel_requested": job.cancel_requested,
            "next_attempt_at": _dt(job.next_attempt_at),
            "created_at": _dt(job.created_at),
            "started_at": _dt(job.started_at),
            "finished_at": _dt(job.finished_at),
            "queue_wait_ms": _float(job.queue_wait_ms),
            "duration_ms": _float(job.duration_ms),
            "billed_ms": job.billed_ms,
            "gb_seconds": _float(job.gb_seconds),
            "cost": self.get_cost(job),
            "log_lines": job.log_lines,
            "log_bytes": job.log_bytes,
            "dropped_log_bytes": job.dropped_log_bytes,
            "function": job.function_name or None,
            "version": job.version_number,
            "alias": job.alias or None,
            "callback_url": job.callback_url or None,
            "links": self.get_links(job),
        }

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
        base = _job_path(job.id)
        return {"self": base, "logs": f"{base}/logs"}


class JobDetailSerializer(JobSerializer):
    attempt_history = AttemptSerializer(source="attempt_set", many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = JobSerializer.Meta.fields + ["code", "args", "attempt_history"]

    def to_representation(self, job: Job) -> dict:
        body = super().to_representation(job)
        body.update(
            code=job.code, args=job.args, attempt_history=[_attempt(a) for a in job.attempt_set.all()]
        )
        return body


def _job_path(job_id) -> str:
    """reverse("api-job-detail") for this id, without resolving the URLconf on every response."""
    global _JOB_PATH
    if _JOB_PATH is None:
        marker = "00000000-0000-0000-0000-000000000000"
        _JOB_PATH = reverse("api-job-detail", args=[marker]).replace(marker, "{}")
    return _JOB_PATH.format(job_id)


_JOB_PATH = None


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
