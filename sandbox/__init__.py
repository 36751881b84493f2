"""Lambdasite's sandbox: run untrusted Python or JavaScript in hardened Docker containers.

Plain Python, no Django: ``run(spec, on_output) -> RunResult``. Configure the
process-wide pool once with :func:`configure`.
"""

from __future__ import annotations

import threading

from .exceptions import SandboxError
from .pool import Sandbox
from .spec import RUNTIMES, FunctionRef, Limits, OutputLine, RunResult, RunSpec
from .sweep import sweep_orphans

__all__ = [
    "RUNTIMES",
    "FunctionRef",
    "Limits",
    "OutputLine",
    "RunResult",
    "RunSpec",
    "Sandbox",
    "SandboxError",
    "configure",
    "default",
    "run",
    "sweep_orphans",
]

_default: Sandbox | None = None
_default_lock = threading.Lock()


def configure(**options) -> Sandbox:
    """Replace the process-wide pool (closing the old one) with one built from ``options``."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = Sandbox(**options)
        return _default


def default() -> Sandbox:
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox()
        return _default


def run(spec: RunSpec, on_output=None, cancel: threading.Event | None = None) -> RunResult:
    return default().run(spec, on_output, cancel)
