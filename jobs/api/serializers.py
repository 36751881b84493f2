"""The jobs API's own request and response shapes (a job's input and output are ``jobs.contract``'s;
the batch item naming a deployed function is the functions API's)."""

from __future__ import annotations

from rest_framework import serializers

from lambdasite.api.fields import EgressField

from ..models import Connection, LogLine


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


class ConnectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Connection
        fields = [
            "seq",
            "attempt",
            "host",
            "port",
            "address",
            "verdict",
            "reason",
            "bytes_sent",
            "bytes_received",
            "started_at",
            "duration_ms",
        ]
        extra_kwargs = {
            "host": {"help_text": "the host the job asked for (a name or an IP literal)"},
            "address": {"help_text": "the address the proxy connected to (empty: none)"},
            "reason": {"help_text": "why it was denied, or why it ended early (a cap)"},
        }


class ConnectionPageSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    job_status = serializers.CharField()
    attempt = serializers.IntegerField(
        allow_null=True, help_text="the attempt asked for (null: every attempt)"
    )
    egress = EgressField(help_text="the job's egress policy")
    connections = ConnectionSerializer(many=True)
    next_after = serializers.IntegerField(help_text="the seq to ask after for the next page")
    complete = serializers.BooleanField(
        help_text="true once the job is finished and every connection was returned"
    )
    dropped = serializers.IntegerField(
        help_text="connections counted but not recorded (over the per-attempt cap)"
    )


class RuntimeSerializer(serializers.Serializer):
    name = serializers.CharField()
    language = serializers.CharField()
    version = serializers.CharField()
    defaults = serializers.DictField()
    caps = serializers.DictField()
    example = serializers.CharField()
    notes = serializers.CharField()
