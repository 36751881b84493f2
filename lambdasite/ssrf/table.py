"""The one deny table webhooks share with a job's egress: it lives in ``sandbox.netpolicy`` (plain
Python, used by the worker's egress proxy too) and is re-exported here for the webhook rule.

``WEBHOOK_ALLOW_PRIVATE_NETWORKS`` (local development and tests) lifts only the entries marked
``private``: loopback, RFC 1918, unique local, shared and benchmarking space. Link-local (cloud
metadata), the metadata addresses inside private ranges, unspecified, multicast, reserved and
documentation space, and every form that embeds or tunnels another address (IPv4-mapped and
-compatible, NAT64, 6to4, Teredo, SIIT) are refused even then: a receiver never needs them, and each
could smuggle a private IPv4 address past a check."""

from __future__ import annotations

from sandbox.netpolicy import TABLE, Denied, Network, denied

__all__ = ["TABLE", "Denied", "Network", "denied"]
