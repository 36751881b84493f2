"""Verdicts: what a job's end means, from the runner's summary, the job's own result frame, or the
engine's account of a container that died. The summary comes from the runner (trusted, but read
defensively); the result frame is bytes the job could have written itself, so any flaw in it is
the job's failure, never the worker's."""

from __future__ import annotations

import json

from . import jsonsafe
from .exceptions import SandboxError
from .spec import Limits, RunResult

MAX_ERROR_TEXT = 16384  # characters of an error message or traceback that are kept


def error(etype: str, message: str, traceback: str = "") -> dict:
    return {"type": etype, "message": message, "traceback": traceback}


def oom_error(limits: Limits) -> dict:
    return error("MemoryLimitExceeded", f"exceeded the {limits.memory_mb} MB memory limit and was killed")


def _stuck(summary: dict) -> str:
    """The runner's look at a timed-out process: was it computing or waiting? ("" if none)."""
    stuck = summary.get("stuck")
    if not isinstance(stuck, dict):
        return ""
    state, cpu, threads = stuck.get("state"), _num(stuck.get("cpu_ms")), _int(stuck.get("threads"))
    if not isinstance(state, str) or cpu is None or threads is None:
        return ""
    return (
        f"when stopped, the job's process was {state[:40]} after {cpu:.0f} ms of CPU, with {threads} threads"
    )


def summary_of(payload: bytes) -> dict:
    """The runner's exit summary (the runner is trusted; a garbled frame is its failure, not the job's)."""
    try:
        summary = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise SandboxError(f"unreadable summary from the runner: {exc}", code="protocol_error") from None
    if not isinstance(summary, dict):
        raise SandboxError("unreadable summary from the runner", code="protocol_error")
    return summary


def from_result_frame(frame: bytes, common: dict) -> RunResult:
    """The job's own report (bytes the job could have written itself): any flaw is the job's failure."""
    try:
        message = jsonsafe.loads(frame)
    except jsonsafe.UnsafeJSON as exc:
        return RunResult(
            status="failed",
            error=error("CorruptResult", f"the function wrote an unusable result: {exc}"),
            **common,
        )
    if isinstance(message, dict) and message.get("ok") is True:
        return RunResult(status="succeeded", result=message.get("result"), **common)
    if isinstance(message, dict) and isinstance(message.get("error"), dict):
        err = message["error"]
        return RunResult(
            status="failed",
            error=error(
                _text(err.get("type", "Error"), 200),
                _text(err.get("message", ""), MAX_ERROR_TEXT),
                _text(err.get("traceback", ""), MAX_ERROR_TEXT),
            ),
            **common,
        )
    return RunResult(
        status="failed", error=error("CorruptResult", "the function wrote an unreadable result"), **common
    )


def _text(value, limit: int) -> str:
    return jsonsafe.scrub_text(value if isinstance(value, str) else str(value), limit)


def _num(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _int(value) -> int | None:
    number = _num(value)
    return int(number) if number is not None and abs(number) < 2**62 else None


def from_summary(
    summary: dict, result_frame: bytes | None, limits: Limits, *, lines: int, container_id: str, reused: bool
) -> RunResult:
    """The verdict of a job the runner saw end (or time out)."""
    common = {
        "exit_code": _int(summary.get("exit_code")),
        "duration_ms": _num(summary.get("wall_ms")) or 0.0,
        "cpu_ms": _num(summary.get("cpu_ms")),
        "max_rss_kb": _int(summary.get("max_rss_kb")),
        "log_bytes": _int(summary.get("log_bytes")) or 0,
        "dropped_bytes": _int(summary.get("dropped_bytes")) or 0,
        "masked": _int(summary.get("masked")) or 0,
        "lines": lines,
        "container_id": container_id,
        "reused": reused,
    }
    if summary.get("timed_out"):
        return RunResult(
            status="timed_out",
            error=error("Timeout", f"exceeded the {limits.timeout_ms} ms time limit", _stuck(summary)),
            **common,
        )
    if summary.get("oom"):
        return RunResult(status="killed", error=oom_error(limits), **common)
    if summary.get("result_overflow"):
        return RunResult(
            status="failed",
            error=error("ResultTooLarge", f"result is over the {limits.max_result_bytes}-byte limit"),
            **common,
        )
    if result_frame is not None:
        return from_result_frame(result_frame, common)
    sig = _int(summary.get("signal"))
    if sig == 24 or (sig == 9 and (common["cpu_ms"] or 0) >= (limits.timeout_ms // 1000 + 2) * 1000):
        return RunResult(
            status="timed_out", error=error("CpuTimeExceeded", "exceeded the CPU time limit"), **common
        )
    if sig:
        return RunResult(
            status="failed",
            error=error("ProcessKilled", f"the function's process was killed by signal {sig}"),
            **common,
        )
    return RunResult(
        status="failed",
        error=error(
            "ProcessExited",
            f"the function's process exited with code {common['exit_code']} before returning",
        ),
        **common,
    )


def from_engine(
    state: dict, limits: Limits, *, ran_ms: float, lines: int, container_id: str, reused: bool, about: str
) -> RunResult:
    """The whole container died mid-job: the engine's state says why (OOM report and exit code);
    anything but the memory limit is the sandbox's failure (``about`` names the cell for it)."""
    exit_code = state.get("ExitCode")
    common = {"exit_code": exit_code, "duration_ms": ran_ms, "lines": lines, "container_id": container_id}
    common["reused"] = reused
    if state.get("OOMKilled") or exit_code == 137:
        return RunResult(status="killed", error=oom_error(limits), **common)
    raise SandboxError(
        f"{about} died (exit {exit_code})",
        code="cell_failed",
        ran_ms=ran_ms,
    )


def init_report(payload: bytes) -> tuple[bool, float | None, dict | None]:
    """A function's initialisation report (``I`` frame): -> (ok, init_ms, error).

    The zygote writes it after running the module, so it is read like a job's own result."""
    body = payload[1:]
    if payload[:1] == b"1":
        try:
            report = jsonsafe.loads(body) if body else {}
        except jsonsafe.UnsafeJSON:
            report = {}
        return True, _num(report.get("init_ms")) if isinstance(report, dict) else None, None
    failed = from_result_frame(body, {})
    err = failed.error or error("InitFailed", "the module's initialisation failed")
    message = f"the module's initialisation failed: {err['message']}"
    return False, None, error(err["type"], message[:MAX_ERROR_TEXT], err["traceback"])
