"""The door: the only way out of a cell (the proxy's what and why: ``proxy.py``'s docstring)."""

from __future__ import annotations

from .accounting import Binding, Budget
from .doors import DOOR_MOUNT, SOCKET_NAME, Door
from .heads import Request, body_framing, closing_head, host_matches, origin_head, parse_head
from .names import Resolve, table_resolver
from .proxy import EgressProxy
from .refusal import Refusal
from .tls import TLSHello, client_hello

__all__ = [
    "DOOR_MOUNT",
    "SOCKET_NAME",
    "Binding",
    "Budget",
    "Door",
    "EgressProxy",
    "Refusal",
    "Request",
    "Resolve",
    "TLSHello",
    "body_framing",
    "client_hello",
    "closing_head",
    "host_matches",
    "origin_head",
    "parse_head",
    "table_resolver",
]
