"""Websocket consumers: live job status and log lines for members of the job's tenant.

``/ws/tenants/<slug>/`` carries status changes of every job of a tenant (jobs
list, overview, dead letters); ``/ws/jobs/<uuid>/`` carries one job's status
changes and log lines (detail page). A connection is refused unless the session's
user is a member of the tenant; a job of another tenant is refused like a job
that does not exist. The first message is ``{"kind": "hello", "seq": N}``; every
event after it has ``seq`` N+1, N+2, ... per group, and a client that sees a gap
re-fetches from the database.
"""
from __future__ import annotations

import uuid

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.models import Membership
from jobs import events
from jobs.models import Job
from lambdasite.redis_client import get_redis

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def group_for(user, kind: str, ident: str) -> str | None:
    """The group a user may watch, or None (not signed in, not a member, no such job)."""
    if not user or not user.is_authenticated:
        return None
    if kind == "tenant":
        membership = Membership.objects.filter(user=user, tenant__slug=ident).values("tenant_id").first()
        return events.tenant_group(membership["tenant_id"]) if membership else None
    try:
        job_id = uuid.UUID(ident)
    except ValueError:
        return None
    tenant_id = Job.objects.filter(pk=job_id).values_list("tenant_id", flat=True).first()
    if tenant_id is None or not Membership.objects.filter(user=user, tenant_id=tenant_id).exists():
        return None
    return events.job_group(job_id)


class LiveConsumer(AsyncJsonWebsocketConsumer):
    kind = ""  # "tenant" or "job"
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not user or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        ident = self.scope["url_route"]["kwargs"]["ident"]
        group = await database_sync_to_async(group_for)(user, self.kind, ident)
        if group is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)  # subscribed before the seq is read: no gap
        await self.accept()
        seq = await sync_to_async(events.current_seq)(get_redis(), group)
        await self.send_json({"kind": "hello", "seq": seq})

    async def disconnect(self, code) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("kind") == "ping":
            await self.send_json({"kind": "pong"})

    async def live_event(self, message: dict) -> None:
        await self.send_json({**message["event"], "seq": message["seq"]})


class TenantConsumer(LiveConsumer):
    kind = "tenant"


class JobConsumer(LiveConsumer):
    kind = "job"
