"""The webhooks app's own settings with their defaults: ``settings.<NAME>`` when the settings module
defines it (tests override it there), else the environment variable of that name (.env.example)."""

from __future__ import annotations

from django.conf import settings

from lambdasite.env import env_float, env_int

_DEFAULTS = {
    # wall clock for one attempt: connect, send and read the whole answer (WEBHOOK_TIMEOUT_S bounds
    # each step; this bounds their sum, so a receiver dripping a byte at a time is cut off)
    "WEBHOOK_DEADLINE_S": (env_float, 15.0),
    # name lookups one tenant may have running at once in a process (a lookup past its timeout
    # still holds its thread until the system resolver gives up)
    "WEBHOOK_RESOLVE_PER_TENANT": (env_int, 2),
    # deliveries of one tenant being sent at once, across every delivery process
    "WEBHOOK_TENANT_IN_FLIGHT": (env_int, 4),
    # times one message (one webhook-id) may be redelivered by hand
    "WEBHOOK_MAX_REDELIVERIES": (env_int, 5),
    # a tenant's webhook writes (endpoints, secrets, redeliveries) per minute
    "WEBHOOK_WRITES_PER_MINUTE": (env_int, 30),
}


def get(name: str):
    if hasattr(settings, name):
        return getattr(settings, name)
    reader, default = _DEFAULTS[name]
    return reader(name, default)
