"""Websocket consumers against the real ASGI stack (origin check, session auth) and the real
Redis channel layer; events come from the services, published by the real publisher thread."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client

from accounts.models import Membership
from accounts.services import membership_set, user_get_or_create
from jobs import events
from jobs.models import Job
from jobs.services import actions
from lambdasite import live
from lambdasite.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

PRINTS = {
    "runtime": "python",
    "code": "def main(n):\n    for i in range(n):\n        print('line', i)\n    return n\n",
    "args": [3],
}


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def communicator(path: str, user=None, origin: str = "http://localhost") -> WebsocketCommunicator:
    """Call from sync code (signing in touches the database); use it inside the async scenario."""
    headers = [(b"origin", origin.encode()), (b"host", b"localhost")]
    if user is not None:
        headers.append((b"cookie", f"sessionid={session_cookie(user)}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def refused(comm: WebsocketCommunicator):
    connected, code = await comm.connect(timeout=5)
    await comm.disconnect()
    return not connected


async def receive_until(comm, predicate, timeout: float = 10.0) -> list[dict]:
    """Messages received until one satisfies ``predicate`` (which is included)."""
    seen = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"timed out; received {seen}"
        message = await comm.receive_json_from(timeout=left)
        seen.append(message)
        if predicate(message):
            return seen


def test_member_receives_the_tenants_job_events_in_sequence(alice):
    comm = communicator(f"/ws/tenants/{alice.tenant.slug}/", alice.user)

    async def scenario():
        connected, _ = await comm.connect(timeout=5)
        assert connected
        hello = await comm.receive_json_from(timeout=5)
        assert hello["kind"] == "hello"
        response = await sync_to_async(alice.post_job)(
            {"runtime": "python", "code": "def main():\n    return 1\n"}
        )
        job_id = response.json()["id"]
        seen = await receive_until(comm, lambda m: m.get("job") == job_id and m["status"] == "dispatched")
        await comm.disconnect()
        return hello, job_id, seen

    hello, job_id, seen = async_to_sync(scenario)()
    assert [m["status"] for m in seen] == ["queued", "dispatched"]
    assert all(m["kind"] == "status" and m["job"] == job_id for m in seen)
    assert [m["seq"] for m in seen] == [hello["seq"] + 1, hello["seq"] + 2]  # no gap, in order


def test_job_group_carries_status_and_every_log_line(alice, run_worker):
    job_id = alice.post_job(PRINTS).json()["id"]

    comm = communicator(f"/ws/jobs/{job_id}/", alice.user)

    async def scenario():
        assert (await comm.connect(timeout=5))[0]
        hello = await comm.receive_json_from(timeout=5)
        await sync_to_async(run_worker)()
        seen = await receive_until(comm, lambda m: m.get("kind") == "status" and m["status"] == "succeeded")
        await comm.disconnect()
        return hello, seen

    hello, seen = async_to_sync(scenario)()
    statuses = [m["status"] for m in seen if m["kind"] == "status"]
    assert statuses == ["running", "succeeded"]
    lines = [line for m in seen if m["kind"] == "logs" for line in m["lines"]]
    assert [(line["seq"], line["stream"], line["text"]) for line in lines] == [
        (1, "stdout", "line 0"),
        (2, "stdout", "line 1"),
        (3, "stdout", "line 2"),
    ]
    assert [m["seq"] for m in seen] == list(range(hello["seq"] + 1, hello["seq"] + 1 + len(seen)))


def test_anonymous_users_are_refused(alice):
    job_id = alice.post_job({"runtime": "python", "code": "def main():\n    return 1\n"}).json()["id"]
    assert async_to_sync(refused)(communicator(f"/ws/tenants/{alice.tenant.slug}/"))
    assert async_to_sync(refused)(communicator(f"/ws/jobs/{job_id}/"))


def test_non_members_are_refused_and_cross_tenant_job_ids_look_missing(alice, bob):
    job_id = alice.post_job({"runtime": "python", "code": "def main():\n    return 1\n"}).json()["id"]
    assert async_to_sync(refused)(communicator(f"/ws/tenants/{alice.tenant.slug}/", bob.user))
    assert async_to_sync(refused)(communicator(f"/ws/jobs/{job_id}/", bob.user))
    assert async_to_sync(refused)(communicator(f"/ws/jobs/{uuid.uuid4()}/", bob.user))
    assert async_to_sync(refused)(communicator("/ws/tenants/no-such-tenant/", bob.user))
    # and the same user is accepted for their own tenant
    comm = communicator(f"/ws/tenants/{bob.tenant.slug}/", bob.user)

    async def accepted():
        ok, _ = await comm.connect(timeout=5)
        await comm.disconnect()
        return ok

    assert async_to_sync(accepted)()


def test_a_viewer_may_watch_and_a_foreign_origin_may_not(alice):
    viewer = user_get_or_create(email="vic@acme.test", password="pw-viewer")
    membership_set(tenant=alice.tenant, user=viewer, role=Membership.Role.VIEWER)

    comm = communicator(f"/ws/tenants/{alice.tenant.slug}/", viewer)

    async def watch():
        ok, _ = await comm.connect(timeout=5)
        await comm.disconnect()
        return ok

    assert async_to_sync(watch)()
    assert async_to_sync(refused)(
        communicator(f"/ws/tenants/{alice.tenant.slug}/", alice.user, origin="http://evil.example")
    )


def test_events_of_another_tenant_never_arrive(alice, bob):
    comm = communicator(f"/ws/tenants/{bob.tenant.slug}/", bob.user)

    async def scenario():
        assert (await comm.connect(timeout=5))[0]
        await comm.receive_json_from(timeout=5)
        await sync_to_async(alice.post_job)({"runtime": "python", "code": "def main():\n    return 1\n"})
        await sync_to_async(events.flush)()
        mine = await sync_to_async(bob.post_job)({"runtime": "python", "code": "def main():\n    return 2\n"})
        seen = await receive_until(comm, lambda m: m.get("status") == "dispatched")
        await comm.disconnect()
        return mine.json()["id"], seen

    bobs_job, seen = async_to_sync(scenario)()
    assert {m["job"] for m in seen} == {bobs_job}


def test_a_dropped_event_turns_into_a_resync(alice, settings):
    """When the publisher's queue overflows, the group later gets a resync with a fresh sequence number."""
    group = events.tenant_group(alice.tenant.id)
    publisher = live.Publisher(maxsize=1)
    publisher.put(group, {"kind": "status", "job": "x", "status": "queued"})
    publisher.put(group, {"kind": "status", "job": "y", "status": "queued"})  # queue full: dropped
    assert publisher.dropped == {group}

    comm = communicator(f"/ws/tenants/{alice.tenant.slug}/", alice.user)

    async def scenario():
        assert (await comm.connect(timeout=5))[0]
        hello = await comm.receive_json_from(timeout=5)
        publisher.start()
        seen = await receive_until(comm, lambda m: m["kind"] == "resync")
        await comm.disconnect()
        return hello, seen

    hello, seen = async_to_sync(scenario)()
    assert [m["kind"] for m in seen] == ["status", "resync"]
    assert [m["seq"] for m in seen] == [hello["seq"] + 1, hello["seq"] + 2]


def test_status_events_follow_every_transition(alice, run_worker):
    """Submit, dispatch, run, fail, requeue, cancel and delete each announce themselves."""
    job = Job.objects.get(
        pk=alice.post_job({"runtime": "python", "code": "def main():\n    raise ValueError(1)\n"}).json()[
            "id"
        ]
    )

    comm = communicator(f"/ws/jobs/{job.id}/", alice.user)

    async def scenario():
        assert (await comm.connect(timeout=5))[0]
        await comm.receive_json_from(timeout=5)
        await sync_to_async(run_worker)()
        first = await receive_until(comm, lambda m: m.get("status") == "failed")
        await sync_to_async(actions.job_requeue)(job=job)
        await sync_to_async(actions.job_cancel)(job=job)
        await sync_to_async(actions.job_delete)(job=job)
        second = await receive_until(comm, lambda m: m.get("status") == "deleted")
        await comm.disconnect()
        return first + second

    seen = async_to_sync(scenario)()
    assert [m["status"] for m in seen] == [
        "running",
        "failed",
        "queued",
        "dispatched",
        "cancelled",
        "deleted",
    ], json.dumps(seen)


# -- access is re-checked while the socket is open ---------------------------------------


def signed_in_pair(path: str, user):
    """A signed-in browser client and a websocket on the same session."""
    client = Client()
    client.force_login(user)
    headers = [
        (b"origin", b"http://localhost"),
        (b"host", b"localhost"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    return client, WebsocketCommunicator(application, path, headers=headers)


async def closed_with(comm, timeout: float = 10.0) -> int:
    """Wait for the server to close the socket; -> its close code (events before it are skipped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, "the socket stayed open"
        output = await comm.receive_output(timeout=left)
        if output["type"] == "websocket.close":
            return output.get("code")


def open_then(path: str, user, change) -> int:
    """Open a watching socket, apply ``change`` (sync; may use the same session's client); -> close code."""
    client, comm = signed_in_pair(path, user)

    async def scenario():
        assert (await comm.connect(timeout=5))[0]
        await comm.receive_json_from(timeout=5)  # hello
        await sync_to_async(change)(client)
        return await closed_with(comm)

    return async_to_sync(scenario)()


@pytest.fixture
def watcher(alice):
    user = user_get_or_create(email="wes@acme.test", password="pw-watcher-1")
    membership_set(tenant=alice.tenant, user=user, role=Membership.Role.MEMBER)
    return user


def test_logging_out_closes_the_sessions_sockets(alice, watcher):
    assert (
        open_then(f"/ws/tenants/{alice.tenant.slug}/", watcher, lambda client: client.post("/logout/"))
        == 4403
    )


def test_a_password_change_elsewhere_closes_the_old_sessions_sockets(alice, watcher):
    def change_elsewhere(_client):
        other = Client()
        other.force_login(watcher)
        other.post(
            "/password/",
            {
                "old_password": "pw-watcher-1",
                "new_password1": "a-new-long-pass-1",
                "new_password2": "a-new-long-pass-1",
            },
        )

    assert open_then(f"/ws/tenants/{alice.tenant.slug}/", watcher, change_elsewhere) == 4403


def test_removal_from_the_tenant_closes_the_socket_and_refuses_it_again(alice, watcher):
    from accounts.services import membership_remove

    job_id = alice.post_job({"runtime": "python", "code": "def main():\n    return 1\n"}).json()["id"]

    def remove(_client):
        membership_remove(tenant=alice.tenant, membership_id=Membership.objects.get(user=watcher).id)

    assert open_then(f"/ws/jobs/{job_id}/", watcher, remove) == 4403
    assert async_to_sync(refused)(communicator(f"/ws/jobs/{job_id}/", watcher))


def test_a_demotion_closes_the_socket_to_authorise_it_afresh(alice, watcher):
    from accounts.services import membership_change_role

    def demote(_client):
        membership = Membership.objects.get(user=watcher)
        membership_change_role(tenant=alice.tenant, membership_id=membership.id, role="viewer")

    assert open_then(f"/ws/tenants/{alice.tenant.slug}/", watcher, demote) == 4409
    assert not async_to_sync(refused)(
        communicator(f"/ws/tenants/{alice.tenant.slug}/", watcher)
    )  # a viewer may still watch


def test_deactivating_the_user_closes_the_socket(alice, watcher):
    def deactivate(_client):
        watcher.is_active = False
        watcher.save()

    assert open_then(f"/ws/tenants/{alice.tenant.slug}/", watcher, deactivate) == 4403


def test_a_lost_notice_is_caught_by_the_periodic_recheck_before_relaying(alice, watcher, settings):
    """Pub/sub may drop the notice: a membership deleted behind the services' back is noticed
    before the next event is relayed."""
    settings.LIVE_RECHECK_S = 0

    def delete_silently(_client):
        Membership.objects.filter(user=watcher).delete()  # no notice is published
        alice.post_job({"runtime": "python", "code": "def main():\n    return 1\n"})  # an event to relay

    assert open_then(f"/ws/tenants/{alice.tenant.slug}/", watcher, delete_silently) == 4403
