"""RQ entry points: take ids, load rows, call one service."""

from __future__ import annotations

from . import services


def run_job(job_id: str) -> None:
    services.job_execute(job_id=job_id)
