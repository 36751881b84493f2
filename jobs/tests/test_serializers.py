"""The hand-written job rendering equals what DRF's generic ModelSerializer rendering gives."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from rest_framework import serializers

from jobs.contract import JobDetailSerializer, JobSerializer
from jobs.models import Attempt, Job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def generic(serializer_class, job) -> dict:
    return serializers.ModelSerializer.to_representation(serializer_class(job), job)


def test_every_kind_of_job_renders_as_drf_would(alice, run_worker):
    bodies = [
        {
            "runtime": "python",
            "code": "def main(a, b):\n    print('x')\n    return {'sum': a + b, 'f': 0.5}\n",
            "args": [2, 3],
        },
        {"runtime": "python", "code": "def main():\n    raise ValueError('no')\n", "max_retries": 1},
        {"runtime": "node", "code": "function main() { return null; }"},
        {"runtime": "python", "code": "def main():\n    return 1\n"},  # left waiting: nulls everywhere
    ]
    ids = [alice.post_job(body).json()["id"] for body in bodies[:3]]
    run_worker()
    ids.append(alice.post_job(bodies[3]).json()["id"])
    reaching = {
        **bodies[3],
        "egress": ["b.example.com:443", "a.example.com:443"],
        "env": {"LONGER": "1", "B": ""},
    }
    ids.append(alice.post_job(reaching).json()["id"])  # left waiting too
    run = alice.post_job({**bodies[3], "durable": True}).json()["id"]  # a durable run and a child of it
    child = alice.post_job(bodies[3]).json()["id"]
    Job.objects.filter(pk=child).update(parent_id=run, parent_step=1, child_index=0, trigger="parent")
    ids += [run, child]
    Attempt.objects.filter(job_id=ids[0]).update(secret_revisions=[["stripe", 3]], masked=2, egress_bytes=512)
    for job_id in ids:
        job = Job.objects.prefetch_related("attempt_set").get(pk=job_id)
        for serializer_class in (JobSerializer, JobDetailSerializer):
            fast = serializer_class(job).data
            assert json.dumps(fast, sort_keys=True) == json.dumps(
                generic(serializer_class, job), sort_keys=True
            )
        assert fast["links"] == {
            "self": reverse("api-job-detail", args=[job.id]),
            "logs": reverse("api-job-logs", args=[job.id]),
            "connections": reverse("api-job-connections", args=[job.id]),
            "steps": reverse("api-job-steps", args=[job.id]),
        }
    first = JobDetailSerializer(Job.objects.get(pk=ids[0])).data["attempt_history"][0]
    assert first["secret_revisions"] == [{"secret": "stripe", "revision": 3}] and first["masked"] == 2
    assert JobSerializer(Job.objects.get(pk=ids[4])).data["egress"] == [
        "a.example.com:443",
        "b.example.com:443",
    ]
    parent = JobDetailSerializer(Job.objects.get(pk=run)).data
    assert parent["durable"] is True and parent["children_count"] == 1
    assert parent["children"] == [{"id": child, "status": "dispatched", "step": 1, "index": 0}]
    assert JobSerializer(Job.objects.get(pk=child)).data["parent"] == run
    retried = JobDetailSerializer(Job.objects.get(pk=ids[1])).data
    assert retried["error"]["type"] == "ValueError" and len(retried["attempt_history"]) == 1
    many = JobSerializer(Job.objects.filter(pk__in=ids).order_by("created_at"), many=True).data
    assert [item["id"] for item in many] == ids
