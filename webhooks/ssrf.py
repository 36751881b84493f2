"""Where webhooks may go. By default only to public addresses: loopback, private, link-local (cloud
metadata at 169.254.169.254), multicast, reserved and unspecified ranges are refused when an endpoint
is registered (its name resolved, within ``WEBHOOK_RESOLVE_TIMEOUT_S``), and again when each
delivery resolves the name (a DNS answer can change in between); the delivery then connects to the
address it checked. A job's one-off ``callback_url`` is checked without DNS when the job is submitted
(a literal address, ``localhost``): a lookup on the submit path would let any name server stall the
API; its name is resolved and checked when it is delivered. ``WEBHOOK_ALLOW_PRIVATE_NETWORKS`` lifts
the rule for local development and tests."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from lambdasite.exceptions import ValidationFailed


class Refused(ValueError):
    """The URL may not receive webhooks; the message says why."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def parse(url: str) -> tuple[str, str, int]:
    """-> (scheme, host, port) of an http(s) URL without credentials, else Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise Refused("may not carry a user name or password")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


def _lookup(host: str, port: int):
    """getaddrinfo, given at most WEBHOOK_RESOLVE_TIMEOUT_S (the resolver's own retries take far longer)."""
    timeout = settings.WEBHOOK_RESOLVE_TIMEOUT_S
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise Refused(f"{host} did not resolve within {timeout:g} s") from None


def check_literal(url: str, *, allow_private: bool | None = None) -> str:
    """Refuse, without any DNS lookup, what is visibly not public: a bad URL, a literal loopback,
    private, link-local, multicast or reserved address, ``localhost``."""
    allow = settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS if allow_private is None else allow_private
    _, host, _ = parse(url)
    if allow:
        return url
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        raise Refused(f"{host} is this machine: loopback is refused")
    try:
        literal = ipaddress.ip_address(name)
    except ValueError:
        return url  # a name: resolved and checked when it is delivered
    if not is_public(str(literal)):
        raise Refused(
            f"{host} is not a public address: loopback, private, link-local, multicast and reserved "
            "ranges are refused"
        )
    return url


def resolve(url: str, *, allow_private: bool | None = None) -> list[str]:
    """The addresses a delivery to ``url`` may connect to (all public unless allowed), else Refused."""
    allow = settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS if allow_private is None else allow_private
    _, host, port = parse(url)
    try:
        infos = _lookup(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow:
        blocked = [a for a in addresses if not is_public(a)]
        if blocked:
            raise Refused(
                f"{host} resolves to a non-public address ({blocked[0]}): loopback, private, link-local, "
                "multicast and reserved ranges are refused"
            )
    return addresses


def check(url: str, field: str = "url") -> str:
    """Validate an endpoint's URL when it is registered; 400 naming ``field`` if refused."""
    try:
        resolve(url)
    except Refused as exc:
        raise ValidationFailed(f"{field}: {exc}", details={"fields": {field: [str(exc)]}}) from None
    return url
