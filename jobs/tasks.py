"""RQ entry points: take ids, load rows, call one function of the worker's runtime."""

from __future__ import annotations

from .execution import job_execute


def run_job(job_id: str, memory_mb: int | None = None) -> None:
    """``memory_mb`` is for the worker's admission (``jobs.worker``); the claim reads the row."""
    job_execute(job_id=job_id)
