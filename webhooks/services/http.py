"""One webhook request: a signed POST to the address that was checked, bounded in time and bytes.

``WEBHOOK_TIMEOUT_S`` bounds each network step; ``WEBHOOK_DEADLINE_S`` bounds the whole attempt
(connect, TLS, send, the answer's head and the part of its body that is read) by the wall clock:
every socket operation is given at most the time left, so a receiver dripping one byte at a time
holds a delivery slot for the deadline, never longer. Only the first ``RESPONSE_MAX_BYTES`` of the
answer are read, as raw bytes: identity encoding is asked for and nothing is ever decompressed.
No redirects, no proxies or other settings from the environment (``trust_env=False``)."""

from __future__ import annotations

import functools
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import httpcore
import httpx
from django.conf import settings
from django.utils import timezone

from lambdasite import ssrf

RESPONSE_MAX_BYTES = 500  # the start of the answer kept with each attempt, and all that is read
MAX_RETRY_AFTER_S = 43200.0


class Answer(NamedTuple):
    status_code: int | None
    error: str
    response: str  # the start of the body, raw bytes shown as text
    retry_after: float | None


def _left(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        timeout = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._deadline)

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: float) -> None:
        self._backend, self._deadline = httpcore.SyncBackend(), deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        timeout = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=False)  # certifi's roots, loaded once per process


class _Transport(httpx.HTTPTransport):
    """httpx's transport on a connection pool whose sockets all answer to one deadline."""

    def __init__(self, deadline: float) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=1,
            max_keepalive_connections=0,
            network_backend=_DeadlineBackend(deadline),
        )


def text(value: str | bytes) -> str:
    """Safe to store: PostgreSQL text cannot hold NUL."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value.replace("\x00", "\ufffd")[:500]


def post(url: str, body: bytes, headers: dict, *, owner=None) -> Answer:
    """POST to the address the name resolved to and was checked at. What the receiver or the network
    does is an Answer (with an error when there is no status); ``send`` records anything else raised
    here as a failed attempt too."""
    try:
        addresses = ssrf.resolve(url, owner=owner, per_owner=settings.WEBHOOK_RESOLVE_PER_TENANT)
    except ssrf.Refused as exc:
        return Answer(None, text(f"refused: {exc}"), "", None)
    deadline_s = settings.WEBHOOK_DEADLINE_S
    deadline = time.monotonic() + deadline_s
    scheme, host, port = ssrf.parse(url)
    default_port = port == (443 if scheme == "https" else 80)
    # connect to the address that was checked (a second lookup could answer differently), naming the
    # host in the Host header and, for TLS, in SNI and the certificate check
    target = httpx.URL(url).copy_with(host=addresses[0])
    request_headers = {
        "content-type": "application/json",
        "user-agent": "Lambdasite-Webhooks/1",
        "accept-encoding": "identity",
        "host": host if default_port else f"{host}:{port}",
        **headers,
    }
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    try:
        with (
            httpx.Client(
                transport=_Transport(deadline),
                timeout=settings.WEBHOOK_TIMEOUT_S,
                follow_redirects=False,
                trust_env=False,
            ) as client,
            client.stream(
                "POST", target, content=body, headers=request_headers, extensions=extensions
            ) as response,
        ):
            start = _start(response)
            retry_after = _retry_after(response.headers.get("retry-after"))
            return Answer(response.status_code, "", text(start[:RESPONSE_MAX_BYTES]), retry_after)
    except httpx.HTTPError as exc:
        if time.monotonic() >= deadline:
            return Answer(None, f"deadline: no complete answer within {deadline_s:g} s", "", None)
        return Answer(None, text(f"{type(exc).__name__}: {exc}"), "", None)


def _start(response: httpx.Response) -> bytes:
    """Up to RESPONSE_MAX_BYTES of the body as sent (never decompressed); the status has arrived and
    decides, so a body cut short by the deadline or the receiver keeps what came."""
    start = b""
    try:
        for chunk in response.iter_raw():
            start += chunk
            if len(start) >= RESPONSE_MAX_BYTES:
                break
    except httpx.HTTPError:
        pass
    return start


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return min(max((when - timezone.now()).total_seconds(), 0.0), MAX_RETRY_AFTER_S)
    except (TypeError, ValueError):
        return None
