"""Durable runs' event waits, the rules both sides share: who writes an event's waits and its events
in turn, which stored event a new wait takes, and the error of one that timed out.

The recording side (``jobs.services.recording``) records a wait and finds an event already stored;
the resuming side (``jobs.services.waits``) posts one to the runs waiting for it, or times a wait
out."""

from __future__ import annotations

import zlib

from django.db import connection

from ..models import Event, Job, Step


def event_lock(tenant_id, name: str, key: str) -> None:
    """Serialise the event's writers (a wait recorded, an event posted) per tenant, name and key:
    a wait recorded while the event is posted either finds it stored or is found waiting by it."""
    digest = zlib.crc32(f"{tenant_id}\x00{name}\x00{key}".encode("utf-8", "surrogatepass"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x4C53, digest - (1 << 31)])


def event_waiting_for(job: Job, name: str, key: str) -> Event | None:
    """The first stored event of the run's tenant with this name and key, received since the run
    began and not taken by another of its waits."""
    taken = Step.objects.filter(job_id=job.id, event_id__isnull=False).values("event_id")
    return (
        Event.objects.filter(tenant_id=job.tenant_id, name=name, key=key, received_at__gte=job.created_at)
        .exclude(id__in=taken)
        .order_by("received_at", "id")
        .first()
    )


def event_timeout_error(terms: dict) -> dict:
    return {
        "type": "EventTimeout",
        "message": f"no event {terms['event']!r} with key {terms['key']!r} came in time",
        "traceback": "",
    }
