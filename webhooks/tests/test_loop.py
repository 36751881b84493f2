"""The delivery loop against real receivers and PostgreSQL: claiming is continuous (a slow receiver
holds one slot, not the loop) and fair (a tenant with its cap in flight leaves the other slots to
others)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from webhooks.models import Delivery
from webhooks.services.loop import deliveries_run

from .test_delivery import RawReceiver, Receiver, a_delivery

pytestmark = pytest.mark.django_db(transaction=True)


def until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def held_until(release: threading.Event):
    def answer(sock):
        release.wait(10)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    return answer


@pytest.fixture
def running(settings):
    """Runs the delivery loop in a thread for the test; -> its stop event."""
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_DEADLINE_S = 10
    stop = threading.Event()

    def run(workers: int):
        def target():
            try:
                deliveries_run(stop=stop, workers=workers, poll_s=0.05)
            finally:
                connection.close()

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread

    threads = []
    yield lambda workers: threads.append(run(workers))
    stop.set()
    for thread in threads:
        thread.join(15)


def test_a_slow_receiver_holds_one_slot_while_the_loop_keeps_claiming(alice, bob, running):
    release = threading.Event()
    slow, fast = RawReceiver(held_until(release)), Receiver()
    try:
        a_delivery(alice, slow.url)
        running(2)
        assert until(lambda: slow.heads)  # alice's send is in flight, held by her receiver
        quick = a_delivery(bob, fast.url)  # due after the loop claimed: the old loop waited for its batch
        assert until(lambda: Delivery.objects.get(pk=quick.pk).status == Delivery.Status.SUCCEEDED, 3)
        assert not release.is_set() and Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 1
    finally:
        release.set()
        slow.close()
        fast.close()
    assert until(lambda: not Delivery.objects.exclude(status=Delivery.Status.SUCCEEDED).exists())


def test_one_tenants_flood_of_slow_receivers_leaves_slots_to_the_others(alice, bob, running, settings):
    settings.WEBHOOK_TENANT_IN_FLIGHT = 2
    release = threading.Event()
    slow, fast = RawReceiver(held_until(release)), Receiver()
    try:
        for _ in range(6):
            a_delivery(alice, slow.url)
        running(3)
        assert until(lambda: len(slow.heads) == 2)
        quick = a_delivery(bob, fast.url)
        assert until(lambda: Delivery.objects.get(pk=quick.pk).status == Delivery.Status.SUCCEEDED, 3)
        assert len(slow.heads) == 2  # alice never had more than her two in flight
    finally:
        release.set()
    try:
        assert until(lambda: Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == 7, 10)
    finally:
        slow.close()
        fast.close()
