"""Where webhooks may go. Only to public addresses: every address in the deny table
(``sandbox/netpolicy.py``, shared with a job's egress: loopback, private, link-local and cloud
metadata, multicast, reserved, documentation, and every form embedding another address) is refused
when an endpoint is registered (its name resolved, within ``WEBHOOK_RESOLVE_TIMEOUT_S``, by a
resolver no tenant can exhaust), and again when each delivery resolves the name (a DNS answer can
change in between); the delivery then connects to the address it checked. A job's one-off
``callback_url`` is checked without DNS when the job is submitted (a literal address,
``localhost``): a lookup on the submit path would let any name server stall the API; its name is
resolved and checked when it is delivered. ``WEBHOOK_ALLOW_PRIVATE_NETWORKS`` lifts the table's
private entries (loopback, RFC 1918, ...) for local development and tests, never link-local or
metadata.

A URL is refused before anything else if it holds a control character or whitespace, or if the HTTP
client would not accept it: a URL that passes here must be one a delivery can send."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from django.conf import settings

from lambdasite.exceptions import ValidationFailed
from sandbox.netpolicy import literal_address

from .resolver import Busy, resolver
from .table import denied

PER_OWNER = 2  # lookups one tenant may have running at once (callers pass the setting)


class Refused(ValueError):
    """The URL may not receive webhooks; the message says why."""


def _allow(allow_private: bool | None) -> bool:
    return settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS if allow_private is None else allow_private


def is_public(address: str, *, allow_private: bool = False) -> bool:
    return denied(address, allow_private=allow_private) is None


def _refuse_address(host: str, address: str, allow_private: bool) -> None:
    row = denied(address, allow_private=allow_private)
    if row is not None:
        raise Refused(f"{host} is not a public address ({address}: {row.why}, in {row.network})")


def parse(url: str) -> tuple[str, str, int]:
    """-> (scheme, host, port) of an http(s) URL without credentials, else Refused."""
    bad = next((c for c in url if c.isspace() or not c.isprintable()), None)
    if bad is not None:
        raise Refused(f"may not contain control characters or whitespace (found {bad!r})")
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)  # what the delivery will send: refused now, not at every attempt
    except (ValueError, httpx.InvalidURL) as exc:
        raise Refused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise Refused("may not carry a user name or password")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _literal(name: str) -> str | None:
    """The address a host names literally: ``10.0.0.1``, ``[::1]``, and the forms the C resolver
    also reads as IPv4 (``2130706433``, ``0x7f.1``, ``127.1``)."""
    literal = literal_address(name)
    return literal[0] if literal is not None else None


def check_literal(url: str, *, allow_private: bool | None = None) -> str:
    """Refuse, without any DNS lookup, what is visibly not public: a bad URL, a literal address in the
    deny table, ``localhost``."""
    allow = _allow(allow_private)
    _, host, _ = parse(url)
    name = host.rstrip(".").lower()
    if not allow and (name == "localhost" or name.endswith(".localhost")):
        raise Refused(f"{host} is this machine: loopback is refused")
    literal = _literal(name)
    if literal is not None:
        _refuse_address(host, literal, allow)
    return url  # a name: resolved and checked when it is delivered


def resolve(
    url: str, *, owner=None, per_owner: int = PER_OWNER, allow_private: bool | None = None
) -> list[str]:
    """The addresses a delivery to ``url`` may connect to (none in the deny table), else Refused.
    ``owner`` (a tenant id) has at most ``per_owner`` lookups running at once."""
    allow = _allow(allow_private)
    check_literal(url, allow_private=allow)
    _, host, port = parse(url)
    timeout = settings.WEBHOOK_RESOLVE_TIMEOUT_S
    try:
        infos = resolver.lookup(host, port, owner=owner, per_owner=per_owner, timeout=timeout)
    except Busy as exc:
        raise Refused(f"{host} was not resolved: {exc}") from None
    except TimeoutError:
        raise Refused(f"{host} did not resolve within {timeout:g} s") from None
    except (OSError, UnicodeError) as exc:
        raise Refused(f"{host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))
    if not addresses:
        raise Refused(f"{host} does not resolve")
    for address in addresses:
        _refuse_address(host, address, allow)
    return addresses


def check(url: str, field: str = "url", *, owner=None, per_owner: int = PER_OWNER) -> str:
    """Validate an endpoint's URL when it is registered; 400 naming ``field`` if refused."""
    try:
        resolve(url, owner=owner, per_owner=per_owner)
    except Refused as exc:
        raise ValidationFailed(f"{field}: {exc}", details={"fields": {field: [str(exc)]}}) from None
    return url
