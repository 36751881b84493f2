"""Request validation and response shapes of the functions API."""

from __future__ import annotations

from datetime import UTC

from django.urls import reverse
from rest_framework import serializers

from jobs.contract import priority_field
from jobs.placement import Placement
from jobs.placement_fields import PlacementSchema, placement_fields, placement_from
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
from lambdasite.parsers import json_problem
from sandbox import RUNTIMES

from ..models import Alias, BuildLogLine, Function, FunctionVersion


class DependenciesField(serializers.JSONField):
    """Node's dependencies object (its names and ranges are checked by the deploy service). Its
    depth is bounded first, without recursion: JSONField's own ``json.dumps`` recurses once per
    level (the dashboard's editor decodes what a person types, not bounded by the API's parser)."""

    def to_internal_value(self, data):
        problem = json_problem(data, max_depth=8)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return super().to_internal_value(data)


class VersionCreateSerializer(StrictSerializer):
    code = CodeField(help_text="the module: source defining the handler")
    handler = StrictCharField(required=False, max_length=100, help_text="default: the function's (main)")
    requirements = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="Python: requirements.txt lines"
    )
    dependencies = DependenciesField(required=False, help_text="Node: package.json's dependencies object")
    timeout_ms = timeout_field(help_text="default limit per invocation")
    memory_mb = memory_field()
    max_retries = StrictIntegerField(required=False, min_value=0)
    description = StrictCharField(required=False, allow_blank=True, max_length=1000)
    egress = EgressField(required=False, help_text="not given: the previous version's (a new function: none)")
    env = env_field(help_text="; not given: the previous version's")
    secrets = secrets_field(help_text="; not given: the previous version's")
    durable = StrictBooleanField(
        required=False,
        help_text="a durable function: its handler gets a context first (steps, sleeps, children, "
        "events); not given: the previous version's (a new function: false)",
    )


class FlowFieldsMixin(serializers.Serializer):
    """A function's flow control (ranges and the key's syntax: the service's, functions.services.flow)."""

    max_concurrency = StrictIntegerField(
        required=False,
        allow_null=True,
        help_text="at most this many of its jobs dispatched or running at once (null: no ceiling)",
    )
    reserved_concurrency = StrictIntegerField(
        required=False,
        allow_null=True,
        help_text="slots of the tenant's max_concurrency only this function may use (it may use the "
        "unreserved rest too); a tenant's reservations together leave at least one slot (0: none)",
    )
    concurrency_key = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=200,
        help_text="a path into the invocation's args, e.g. $[0].store_id or $[1]: jobs with the same "
        "key share concurrency_per_key slots, and keys take turns (empty or null: no key)",
    )
    concurrency_per_key = StrictIntegerField(
        required=False,
        allow_null=True,
        help_text="jobs of one key at once (default 1 with a concurrency_key)",
    )


class PlacementFieldsMixin(serializers.Serializer):
    """A function's placement (jobs.placement): where its jobs run unless an invocation says."""

    pool, placement = placement_fields()

    def validate(self, attrs):
        return placement_from(super().validate(attrs))


class FunctionCreateSerializer(PlacementFieldsMixin, FlowFieldsMixin, VersionCreateSerializer):
    name = StrictCharField(max_length=64, help_text="lowercase letters, digits, - and _ (unique per tenant)")
    runtime = serializers.ChoiceField(choices=RUNTIMES)
    provisioned = StrictIntegerField(required=False, min_value=0, help_text="warm cells kept ready")


class FunctionUpdateSerializer(PlacementFieldsMixin, FlowFieldsMixin, StrictSerializer):
    provisioned = StrictIntegerField(required=False, min_value=0)
    description = StrictCharField(required=False, allow_blank=True, max_length=1000)


class AliasSetSerializer(StrictSerializer):
    version = StrictIntegerField(min_value=1, help_text="the version the alias names")
    additional_version = StrictIntegerField(required=False, min_value=1, allow_null=True)
    weight = serializers.FloatField(
        required=False, min_value=0, max_value=1, help_text="share of calls sent to additional_version"
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=200)


class InvokeSerializer(StrictSerializer):
    args = ArgsField(required=False, help_text="JSON array of positional arguments")
    timeout_ms = timeout_field()
    memory_mb = memory_field()
    run_at, delay_s, callback_url = later_fields()
    priority = priority_field()
    pool, placement = placement_fields()

    def validate(self, attrs):
        return placement_from(when_from(attrs))


class WarmSerializer(StrictSerializer):
    count = StrictIntegerField(required=False, min_value=1, default=1)


def _dt(value):
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def function_path(name: str) -> str:
    return reverse("api-function-detail", args=[name])


def version_body(version: FunctionVersion, *, code: bool = False) -> dict:
    function = version.function
    base = f"{function_path(function.name)}/versions/{version.number}"
    layer = version.layer
    body = {
        "function": function.name,
        "number": version.number,
        "status": version.status,
        "handler": version.handler,
        "description": version.description,
        "limits": {"timeout_ms": version.timeout_ms, "memory_mb": version.memory_mb},
        "max_retries": version.max_retries,
        "content_hash": version.content_hash or None,
        "build_error": version.build_error or None,
        "egress": version.egress,
        "env": dict(sorted(version.env.items())),  # (jsonb keeps its keys by length)
        "secrets": dict(sorted(version.secrets.items())),
        "durable": version.durable,
        "layer": None
        if layer is None
        else {"digest": layer.digest, "packages": layer.packages, "size_bytes": layer.size_bytes},
        "created_at": _dt(version.created_at),
        "built_at": _dt(version.built_at),
        "links": {"self": base, "build_logs": f"{base}/build-logs"},
    }
    if function.runtime == "python":
        body["requirements"] = version.requirements
    else:
        body["dependencies"] = version.dependencies
    if code:
        body["code"] = version.code
        body["lock"] = version.lock
    return body


def alias_body(alias: Alias) -> dict:
    return {
        "name": alias.name,
        "version": alias.version.number,
        "additional_version": alias.additional_version.number if alias.additional_version else None,
        "weight": alias.additional_weight,
        "description": alias.description,
        "updated_at": _dt(alias.updated_at),
    }


def function_body(function: Function, *, latest_ready: int | None, aliases) -> dict:
    base = function_path(function.name)
    return {
        "name": function.name,
        "runtime": function.runtime,
        "handler": function.handler,
        "description": function.description,
        "limits": {"timeout_ms": function.timeout_ms, "memory_mb": function.memory_mb},
        "max_retries": function.max_retries,
        "provisioned": function.provisioned,
        "max_concurrency": function.max_concurrency,
        "reserved_concurrency": function.reserved_concurrency,
        "concurrency_key": function.concurrency_key or None,
        "concurrency_per_key": function.concurrency_per_key,
        "placement": Placement.of(function).body(),
        "disabled": function.is_disabled,
        "latest_version": function.latest_number,
        "latest_ready_version": latest_ready,
        "aliases": [alias_body(a) for a in aliases],
        "created_at": _dt(function.created_at),
        "updated_at": _dt(function.updated_at),
        "links": {"self": base, "versions": f"{base}/versions", "invoke": f"{base}/invoke"},
    }


def build_line_body(line: BuildLogLine) -> dict:
    return {"seq": line.seq, "stream": line.stream, "ts": _dt(line.ts), "text": line.text}


class FunctionSchema(serializers.Serializer):
    """The shape of a function in answers (for the OpenAPI document)."""

    name = serializers.CharField()
    runtime = serializers.CharField()
    handler = serializers.CharField()
    description = serializers.CharField()
    limits = serializers.DictField()
    max_retries = serializers.IntegerField(allow_null=True)
    provisioned = serializers.IntegerField()
    max_concurrency = serializers.IntegerField(allow_null=True)
    reserved_concurrency = serializers.IntegerField()
    concurrency_key = serializers.CharField(allow_null=True)
    concurrency_per_key = serializers.IntegerField(allow_null=True)
    placement = PlacementSchema(help_text="where its jobs run unless an invocation says otherwise")
    disabled = serializers.BooleanField()
    latest_version = serializers.IntegerField()
    latest_ready_version = serializers.IntegerField(allow_null=True)
    aliases = serializers.ListField(child=serializers.DictField())
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    links = serializers.DictField()


class VersionSchema(serializers.Serializer):
    function = serializers.CharField()
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["building", "ready", "failed"])
    handler = serializers.CharField()
    description = serializers.CharField()
    limits = serializers.DictField()
    max_retries = serializers.IntegerField(allow_null=True)
    content_hash = serializers.CharField(allow_null=True)
    build_error = serializers.CharField(allow_null=True)
    egress = EgressField()
    env = serializers.DictField(child=serializers.CharField(), help_text="non-secret configuration")
    secrets = serializers.DictField(
        child=serializers.CharField(), help_text="{ENV_NAME: secret name}: names only, never values"
    )
    durable = serializers.BooleanField(help_text="its invocations are durable runs")
    layer = serializers.DictField(allow_null=True)
    requirements = serializers.CharField(required=False, help_text="Python")
    dependencies = serializers.DictField(required=False, help_text="Node")
    code = serializers.CharField(required=False, help_text="in the answer for one version")
    lock = serializers.CharField(required=False, help_text="in the answer for one version")
    created_at = serializers.DateTimeField()
    built_at = serializers.DateTimeField(allow_null=True)
    links = serializers.DictField()


class FunctionCreatedSchema(FunctionSchema):
    version = VersionSchema()


class AliasSchema(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    additional_version = serializers.IntegerField(allow_null=True)
    weight = serializers.FloatField()
    description = serializers.CharField()
    updated_at = serializers.DateTimeField()


class BuildLogPageSchema(serializers.Serializer):
    function = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    lines = serializers.ListField(child=serializers.DictField())
    next_after = serializers.IntegerField()
    complete = serializers.BooleanField()
