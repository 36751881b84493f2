"""Resolving the names jobs ask for (cells have no DNS): the proxy's own lookups, a few at a time per
tenant, each within its timeout; and the resolvers it is given (the system's, or a fixed table)."""

from __future__ import annotations

import collections
import concurrent.futures
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from .refusal import Refusal

Resolve = Callable[[str, int], list[str]]


class Lookups:
    """The proxy's lookups in flight, on a pool of threads shared by every door.

    getaddrinfo cannot be interrupted: a lookup outliving its timeout holds its thread until the
    system resolver gives up, so a tenant may have only a few running, and its further lookups
    wait for one of them within their own timeout (its slow names cannot take every thread)."""

    def __init__(self) -> None:
        self._resolver = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="egress-dns")
        self._running: collections.Counter = collections.Counter()
        self._changed = threading.Condition()

    def addresses(
        self, tenant: str, host: str, port: int, *, resolve: Resolve, timeout_s: float, per_tenant: int
    ) -> list[str]:
        """The addresses ``host`` resolves to (deduplicated, zone ids dropped), else Refusal."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._running[tenant] >= per_tenant:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Refusal(f"{per_tenant} of this tenant's names are still resolving")
                self._changed.wait(remaining)
            self._running[tenant] += 1

        def done() -> None:
            with self._changed:
                self._running[tenant] -= 1
                if not self._running[tenant]:
                    del self._running[tenant]
                self._changed.notify_all()

        def lookup() -> list[str]:
            try:
                return resolve(host, port)
            finally:
                done()

        try:
            future = self._resolver.submit(lookup)
        except RuntimeError:  # the proxy is closing
            done()
            raise Refusal("the name does not resolve") from None
        try:
            found = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            raise Refusal("the name did not resolve in time") from None
        except (OSError, UnicodeError, ValueError, RuntimeError):
            raise Refusal("the name does not resolve") from None
        addresses = list(dict.fromkeys(a.split("%", 1)[0] for a in found))
        if not addresses:
            raise Refusal("the name does not resolve")
        return addresses

    def close(self) -> None:
        self._resolver.shutdown(wait=False, cancel_futures=True)


def table_resolver(table: Mapping[str, Sequence[str]]) -> Resolve:
    """A resolver answering from ``table`` alone, a name not in it not resolving: the system tests'
    names for a worker's proxy (EGRESS_TEST_HOSTS). Its answers pass the deny table like any other."""
    names = {name.lower(): list(addresses) for name, addresses in table.items()}

    def resolve(host: str, port: int) -> list[str]:
        if host not in names:
            raise OSError(f"{host}: not in the name table")
        return list(names[host])

    return resolve


def system_resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
