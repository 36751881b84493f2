"""Websocket consumers: live job status and log lines for members of the job's tenant.

``/ws/tenants/<slug>/`` carries status changes of every job of a tenant (jobs
list, overview, dead letters) and its functions' and schedules' changes (their
pages); ``/ws/jobs/<uuid>/`` carries one job's status
changes and log lines (detail page); ``/ws/builds/<version id>/`` a function
version's build status and build log. A connection is refused unless the session's
user is a member of the tenant; a job of another tenant is refused like a job
that does not exist. The first message is ``{"kind": "hello", "seq": N}``; every
event after it has ``seq`` N+1, N+2, ... per group, and a client that sees a gap
re-fetches from the database.

Access is not only checked at connect: the socket also listens on its user's
group, where logout, a password change, deactivation and every membership change
publish an ``access`` notice; the socket then re-checks the session and the
membership and closes (the page reconnects, and is refused if it may no longer
watch). Because pub/sub may drop a notice, access is also re-checked before
relaying whenever the last check is older than ``LIVE_RECHECK_S``.
"""

from __future__ import annotations

import time
import uuid

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore

from accounts.models import Membership
from functions.models import FunctionVersion
from functions.services.buildlog import build_group
from jobs import events
from jobs.models import Job
from lambdasite import live
from lambdasite.redis_client import get_redis

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RECHECK = 4409  # access changed: reconnect to be authorised afresh


def tenant_of(user, kind: str, ident: str) -> tuple[str, int] | None:
    """(group, tenant id) a user may watch, or None (not signed in, not a member, no such job)."""
    if not user or not user.is_authenticated:
        return None
    if kind == "tenant":
        membership = Membership.objects.filter(user=user, tenant__slug=ident).values("tenant_id").first()
        return (events.tenant_group(membership["tenant_id"]), membership["tenant_id"]) if membership else None
    if kind == "build":
        if not ident.isdigit():
            return None
        tenant_id = (
            FunctionVersion.objects.filter(pk=int(ident))
            .values_list("function__tenant_id", flat=True)
            .first()
        )
        if tenant_id is None or not Membership.objects.filter(user=user, tenant_id=tenant_id).exists():
            return None
        return build_group(ident), tenant_id
    try:
        job_id = uuid.UUID(ident)
    except ValueError:
        return None
    tenant_id = Job.objects.filter(pk=job_id).values_list("tenant_id", flat=True).first()
    if tenant_id is None or not Membership.objects.filter(user=user, tenant_id=tenant_id).exists():
        return None
    return events.job_group(job_id), tenant_id


def still_allowed(session_key: str | None, user_id: int, tenant_id: int) -> bool:
    """The session still exists and still signs this active user in (a password change or
    logout ends it), and the user is still a member of the tenant."""
    if not session_key:
        return False
    data = SessionStore(session_key=session_key).load()
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or str(data.get(SESSION_KEY)) != str(user_id):
        return False
    if data.get(HASH_SESSION_KEY) != user.get_session_auth_hash():
        return False
    return Membership.objects.filter(user_id=user_id, tenant_id=tenant_id).exists()


class LiveConsumer(AsyncJsonWebsocketConsumer):
    kind = ""  # "tenant" or "job"
    group: str | None = None
    tenant_id: int | None = None
    checked_at = 0.0

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not user or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        ident = self.scope["url_route"]["kwargs"]["ident"]
        found = await database_sync_to_async(tenant_of)(user, self.kind, ident)
        if found is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group, self.tenant_id = found
        self.user_id = user.id
        self.session_key = self.scope["session"].session_key
        self.checked_at = time.monotonic()
        await self.channel_layer.group_add(live.user_group(user.id), self.channel_name)
        await self.channel_layer.group_add(
            self.group, self.channel_name
        )  # subscribed before the seq is read: no gap
        await self.accept()
        seq = await sync_to_async(events.current_seq)(get_redis(), self.group)
        await self.send_json({"kind": "hello", "seq": seq})

    async def disconnect(self, code) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.channel_layer.group_discard(live.user_group(self.user_id), self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("kind") == "ping":
            await self.send_json({"kind": "pong"})

    async def live_event(self, message: dict) -> None:
        event = message["event"]
        if event.get("kind") == "access":
            # something about this user changed: never keep relaying on the old authorisation
            allowed = await database_sync_to_async(still_allowed)(
                self.session_key, self.user_id, self.tenant_id
            )
            await self.close(code=CLOSE_RECHECK if allowed else CLOSE_FORBIDDEN)
            return
        if time.monotonic() - self.checked_at > settings.LIVE_RECHECK_S:
            if not await database_sync_to_async(still_allowed)(
                self.session_key, self.user_id, self.tenant_id
            ):
                await self.close(code=CLOSE_FORBIDDEN)
                return
            self.checked_at = time.monotonic()
        await self.send_json({**event, "seq": message["seq"]})


class TenantConsumer(LiveConsumer):
    kind = "tenant"


class JobConsumer(LiveConsumer):
    kind = "job"


class BuildConsumer(LiveConsumer):
    """A function version's build: its status and build log lines."""

    kind = "build"
