"""Where a request may connect: the attempt's egress policy on the host it names, then the deny
table and the platform's own services (``sandbox.netpolicy``) on every address that host is, so
that the proxy connects only to an address it checked (a name that rebinds reaches nothing else).
Literal addresses are read as the C resolver reads them and refused unless canonical."""

from __future__ import annotations

from collections.abc import Callable

from ..egress_policy import allows, is_hostname
from ..netpolicy import NetPolicy, literal_address
from ..spec import Egress
from .heads import Request
from .refusal import Refusal


def destinations(
    request: Request, *, egress: Egress, policy: NetPolicy, lookup: Callable[[str, int], list[str]]
) -> list[str]:
    """The policy's and the table's verdict on a request: the addresses it may connect to, else
    Refusal. ``lookup`` resolves a name (only once the name itself passed)."""
    host, port = request.host, request.port
    if not allows(egress.mode, egress.allow, host, port):
        raise Refusal("not on the egress allowlist" if egress.mode == "allowlist" else "egress is off")
    literal = literal_address(host)
    if literal is not None:
        address, canonical = literal
        why = policy.check(address, port)
        if why is not None:
            raise Refusal(why)
        if not canonical:
            raise Refusal(f"a non-canonical address literal (means {address})")
        return [address]
    if not is_hostname(host):
        raise Refusal("not a host name")
    why = policy.check_name(host, port)
    if why is not None:
        raise Refusal(why)
    addresses = lookup(host, port)
    for address in addresses:
        why = policy.check(address, port)
        if why is not None:
            raise Refusal(f"{why} ({address})")
    return addresses
