"""Lambdasite's sandbox: run untrusted Python or JavaScript in hardened Docker containers.

Plain Python, no Django: ``run(spec, on_output) -> RunResult``. Configure the
process-wide pool once with :func:`configure`.
"""

from __future__ import annotations

import functools
import threading

from .exceptions import SandboxError
from .pool import Sandbox
from .spec import (
    RUNTIMES,
    Connection,
    DoorUse,
    Durable,
    Egress,
    FunctionRef,
    Limits,
    OutputLine,
    RunResult,
    RunSpec,
    SecretValue,
)
from .sweep import sweep_orphans

__all__ = [
    "RUNTIMES",
    "Connection",
    "DoorUse",
    "Durable",
    "Egress",
    "FunctionRef",
    "Limits",
    "OutputLine",
    "RunResult",
    "RunSpec",
    "Sandbox",
    "SandboxError",
    "SecretValue",
    "configure",
    "default",
    "run",
    "sweep_orphans",
]

_options: dict = {}  # what configure() was last given: the next pool is built from it
_lock = threading.Lock()


@functools.cache
def _pool() -> Sandbox:
    return Sandbox(**_options)


def configure(**options) -> Sandbox:
    """Replace the process-wide pool (closing the old one) with one built from ``options``."""
    with _lock:
        if _pool.cache_info().currsize:
            _pool().close()
        _pool.cache_clear()
        _options.clear()
        _options.update(options)
        return _pool()


def default() -> Sandbox:
    """The process-wide pool: the one :func:`configure` built, else one with the defaults."""
    with _lock:  # one pool, however many threads ask first
        return _pool()


def run(spec: RunSpec, on_output=None, cancel: threading.Event | None = None) -> RunResult:
    return default().run(spec, on_output, cancel)
