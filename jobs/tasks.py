"""RQ entry points: take ids, load rows, call one function of the worker's runtime."""

from __future__ import annotations

from .execution import job_execute


def run_job(job_id: str) -> None:
    job_execute(job_id=job_id)
