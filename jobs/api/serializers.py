"""The jobs API's own request and response shapes (a job's input and output are ``jobs.contract``'s;
the batch item naming a deployed function is the functions API's)."""

from __future__ import annotations

from rest_framework import serializers

from ..models import LogLine


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
