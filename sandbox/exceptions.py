"""Errors of the sandbox: every Docker failure surfaces as one SandboxError."""

from __future__ import annotations


class SandboxError(Exception):
    """An internal failure of the sandbox, never the user's fault.

    ``code`` names the cause for callers and operators: ``engine_unavailable``,
    ``image_missing``, ``cell_failed``, ``protocol_error``.
    """

    def __init__(self, message: str, *, code: str = "sandbox_error", ran_ms: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.ran_ms = ran_ms  # how long user code had run when the sandbox failed (billed)


class CellUnusable(Exception):
    """The cell did not report itself clean after its previous job: take another one."""
