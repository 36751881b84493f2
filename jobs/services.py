"""Every state transition of a job happens here: submit, dispatch, claim, record output, finish."""
from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any

import django_rq
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

import sandbox
from accounts.models import ApiKey, Quota, Tenant
from lambdasite.errors import PayloadTooLarge, ValidationFailed

from .models import Attempt, Job, LogLine, Status

log = logging.getLogger("lambdasite.jobs")
INTERNAL_RETRIES = 3  # sandbox failures (engine down, image missing) are retried, never blamed on the user
INTERNAL_RETRY_DELAY_S = 2


@dataclass(frozen=True)
class JobSpec:
    runtime: str
    code: str
    args: list = field(default_factory=list)
    handler: str = "main"
    timeout_ms: int | None = None
    memory_mb: int | None = None
    max_retries: int | None = None


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def job_spec_validate(*, quota: Quota, spec: JobSpec) -> JobSpec:
    """Check a spec against the tenant's caps and fill in defaults; raises 400/413 errors naming the field."""
    code_bytes = len(spec.code.encode("utf-8", "surrogatepass"))
    if code_bytes > quota.max_code_bytes:
        raise PayloadTooLarge(
            f"code is {code_bytes} bytes, over this tenant's cap of {quota.max_code_bytes}",
            details={"field": "code", "size": code_bytes, "limit": quota.max_code_bytes},
        )
    args_bytes = _json_size(spec.args)
    if args_bytes > quota.max_args_bytes:
        raise PayloadTooLarge(
            f"args is {args_bytes} bytes, over this tenant's cap of {quota.max_args_bytes}",
            details={"field": "args", "size": args_bytes, "limit": quota.max_args_bytes},
        )
    timeout_ms = spec.timeout_ms if spec.timeout_ms is not None else min(settings.JOB_DEFAULT_TIMEOUT_MS, quota.max_timeout_ms)
    memory_mb = spec.memory_mb if spec.memory_mb is not None else min(settings.JOB_DEFAULT_MEMORY_MB, quota.max_memory_mb)
    max_retries = spec.max_retries if spec.max_retries is not None else quota.default_max_retries
    for name, value, cap in (
        ("timeout_ms", timeout_ms, quota.max_timeout_ms),
        ("memory_mb", memory_mb, quota.max_memory_mb),
        ("max_retries", max_retries, quota.max_retries_cap),
    ):
        if value > cap:
            raise ValidationFailed(
                f"{name}: {value} is over this tenant's cap of {cap}",
                details={"fields": {name: [f"must be at most {cap}"]}, "field": name, "limit": cap},
            )
    return JobSpec(
        runtime=spec.runtime,
        code=spec.code,
        args=spec.args,
        handler=spec.handler,
        timeout_ms=timeout_ms,
        memory_mb=memory_mb,
        max_retries=max_retries,
    )


@transaction.atomic
def job_submit(*, tenant: Tenant, api_key: ApiKey | None, spec: JobSpec) -> Job:
    spec = job_spec_validate(quota=tenant.quota, spec=spec)
    job = Job.objects.create(
        tenant=tenant,
        api_key=api_key,
        runtime=spec.runtime,
        handler=spec.handler,
        code=spec.code,
        args=spec.args,
        timeout_ms=spec.timeout_ms,
        memory_mb=spec.memory_mb,
        max_retries=spec.max_retries,
    )
    transaction.on_commit(lambda: job_dispatch(job_id=job.id))
    log.info("job submitted", extra={"event": "submitted", "job_id": str(job.id), "tenant": tenant.slug, "runtime": job.runtime})
    return job


def job_dispatch(*, job_id, delay_s: float = 0) -> None:
    """Hand a committed job to the RQ transport. PostgreSQL stays the source of truth."""
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    job = Job.objects.only("timeout_ms").get(pk=job_id)
    options = {
        "job_timeout": job.timeout_ms // 1000 + 120,
        "result_ttl": 0,
        "failure_ttl": 24 * 3600,
        "description": f"lambdasite job {job_id}",
    }
    if delay_s:
        queue.enqueue_in(timedelta(seconds=delay_s), "jobs.tasks.run_job", str(job_id), **options)
    else:
        queue.enqueue("jobs.tasks.run_job", str(job_id), **options)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@transaction.atomic
def job_claim(*, job_id, worker: str) -> tuple[Job, Attempt] | None:
    """Compare-and-set a waiting job to running and open its next attempt; None if it is not waiting."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status__in=[Status.QUEUED, Status.DISPATCHED, Status.RETRYING]).update(
        status=Status.RUNNING, attempts=F("attempts") + 1, started_at=now
    )
    if not claimed:
        return None
    job = Job.objects.select_related("tenant").get(pk=job_id)
    if job.queue_wait_ms is None:
        job.queue_wait_ms = (now - job.created_at).total_seconds() * 1000.0
        job.save(update_fields=["queue_wait_ms"])
    attempt = Attempt.objects.create(job=job, number=job.attempts, worker=worker, started_at=now, status=Status.RUNNING)
    log.info(
        "job started",
        extra={"event": "started", "job_id": str(job.id), "attempt": attempt.number, "tenant": job.tenant.slug, "worker": worker},
    )
    return job, attempt


def job_limits(job: Job) -> sandbox.Limits:
    quota = job.tenant.quota
    return sandbox.Limits(
        timeout_ms=job.timeout_ms,
        memory_mb=job.memory_mb,
        cpus=settings.SANDBOX_CPUS,
        pids=settings.SANDBOX_PIDS,
        tmpfs_mb=settings.SANDBOX_TMPFS_MB,
        nofile=settings.SANDBOX_NOFILE,
        fsize_mb=settings.SANDBOX_FSIZE_MB,
        max_log_bytes=quota.max_log_bytes,
        max_result_bytes=quota.max_result_bytes,
    )


class LogWriter:
    """Stores output lines as they arrive, one bulk insert per batch the sandbox delivers."""

    def __init__(self, job: Job, attempt: Attempt) -> None:
        self.job = job
        self.attempt = attempt
        self.offset = job.log_lines  # seq continues across attempts
        self.count = 0
        self.bytes = 0

    def __call__(self, lines: list[sandbox.OutputLine]) -> None:
        if not lines:
            return
        rows = [
            LogLine(
                job_id=self.job.id,
                attempt=self.attempt.number,
                seq=self.offset + line.seq,
                stream=line.stream,
                ts=datetime.fromtimestamp(line.ts, tz=dt_timezone.utc),
                text=line.text,
            )
            for line in lines
        ]
        LogLine.objects.bulk_create(rows)
        self.count = max(self.count, lines[-1].seq)
        self.bytes += sum(len(line.text) for line in lines)


def job_execute(*, job_id) -> Job | None:
    """Run one attempt of a job in the sandbox (called by the worker)."""
    claimed = job_claim(job_id=job_id, worker=worker_name())
    if claimed is None:
        log.info("job not waiting; skipped", extra={"event": "skipped", "job_id": str(job_id)})
        return None
    job, attempt = claimed
    spec = sandbox.RunSpec(
        runtime=job.runtime,
        code=job.code,
        args=job.args,
        handler=job.handler,
        limits=job_limits(job),
        tenant=job.tenant.slug,
        labels={"lambdasite.job": str(job.id), "lambdasite.attempt": str(attempt.number)},
    )
    writer = LogWriter(job, attempt)
    try:
        result = sandbox.run(spec, writer)
    except sandbox.SandboxError as exc:
        log.error(
            "sandbox failure",
            extra={"event": "internal_error", "job_id": str(job.id), "attempt": attempt.number, "tenant": job.tenant.slug},
        )
        return job_internal_error(job_id=job.id, attempt_number=attempt.number, error=exc, log_lines=writer.count)
    return job_finish(job_id=job.id, attempt_number=attempt.number, result=result, log_lines=writer.count)


def _clean_json(value: Any) -> Any:
    """PostgreSQL jsonb refuses NUL characters; replace them rather than lose the result."""
    text = json.dumps(value)
    if "\\u0000" not in text:
        return value
    return json.loads(text.replace("\\u0000", "\\ufffd"))


@transaction.atomic
def job_finish(*, job_id, attempt_number: int, result: sandbox.RunResult, log_lines: int) -> Job | None:
    """Record an attempt's verdict; only the job's current attempt may write its outcome."""
    job = Job.objects.select_for_update().select_related("tenant").get(pk=job_id)
    attempt = Attempt.objects.select_for_update().get(job=job, number=attempt_number)
    now = timezone.now()
    attempt.status = result.status
    attempt.finished_at = now
    attempt.duration_ms = result.duration_ms
    attempt.start_ms = result.start_ms
    attempt.cpu_ms = result.cpu_ms
    attempt.exit_code = result.exit_code
    attempt.container_id = result.container_id[:64]
    attempt.error = _clean_json(result.error)
    attempt.save()
    if job.attempts != attempt_number or job.status != Status.RUNNING:
        log.warning("stale attempt result ignored", extra={"event": "stale", "job_id": str(job.id), "attempt": attempt_number})
        return job
    job.status = result.status
    job.result = _clean_json(result.result) if result.status == Status.SUCCEEDED else None
    job.error = _clean_json(result.error)
    job.exit_code = result.exit_code
    job.finished_at = now
    job.duration_ms = result.duration_ms
    job.log_lines = job.log_lines + log_lines
    job.log_bytes = job.log_bytes + result.log_bytes
    job.dropped_log_bytes = job.dropped_log_bytes + result.dropped_bytes
    job.save()
    log.info(
        "job finished",
        extra={
            "event": "finished",
            "job_id": str(job.id),
            "attempt": attempt_number,
            "tenant": job.tenant.slug,
            "status": job.status,
            "duration_ms": round(result.duration_ms, 2),
        },
    )
    return job


@transaction.atomic
def job_internal_error(*, job_id, attempt_number: int, error: Exception, log_lines: int) -> Job:
    """The sandbox failed (not the user's code): retry a few times, then fail with an internal error."""
    job = Job.objects.select_for_update().select_related("tenant").get(pk=job_id)
    details = {"type": "InternalError", "code": getattr(error, "code", "sandbox_error"), "message": str(error), "traceback": ""}
    Attempt.objects.filter(job=job, number=attempt_number).update(
        status=Status.FAILED, finished_at=timezone.now(), error=details
    )
    if job.attempts != attempt_number or job.status != Status.RUNNING:
        return job
    internal_failures = Attempt.objects.filter(job=job, error__type="InternalError").count()
    job.log_lines += log_lines
    if internal_failures < INTERNAL_RETRIES:
        job.status = Status.QUEUED
        job.save(update_fields=["status", "log_lines"])
        transaction.on_commit(lambda: job_dispatch(job_id=job.id, delay_s=INTERNAL_RETRY_DELAY_S))
        return job
    job.status = Status.FAILED
    job.error = {**details, "message": f"the sandbox failed {internal_failures} times: {error}"}
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at", "log_lines"])
    return job
