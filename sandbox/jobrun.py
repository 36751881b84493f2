"""One job in a cell, host side: its deadlines, its output relayed to the caller under the log caps, and
the result it comes to (the cell decides which way it ended and whether it stays usable)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from . import protocol, verdicts
from .exceptions import SandboxError
from .spec import OutputLine, RunResult, RunSpec

GUARD_S = 2.0
LATE_OUTPUT_S = 0.25  # output still arriving this long after the job's time limit is counted, not stored
OnOutput = Callable[[list[OutputLine]], None]


class JobRun:
    """What the host keeps while one job runs: deadlines, numbered output lines, the runner's frames."""

    def __init__(
        self, spec: RunSpec, on_output: OnOutput | None, *, loading: bool, reused: bool, container_id: str
    ) -> None:
        limits = self.limits = spec.limits
        self.lines = protocol.LineSplitter(max_lines=limits.max_log_lines)
        self.deliver = on_output or (lambda batch: None)
        self.reused = reused
        self.container_id = container_id
        self.t0 = time.monotonic()
        self.deadline = self.t0 + limits.timeout_ms / 1000.0 + GUARD_S
        if loading:
            self.deadline += protocol.INIT_TIMEOUT_MS / 1000.0
        # Output is relayed as fast as this side reads it; what the pipe between runner and
        # host still holds when the job's time is up is skipped past, not split and stored,
        # so the verdict comes within LATE_OUTPUT_S of the limit however slow storing is.
        self.late_after = self.t0 + limits.timeout_ms / 1000.0 + LATE_OUTPUT_S
        self.late_bytes = 0
        self.capped = False
        self.result_frame: bytes | None = None
        self.summary: dict | None = None
        self.init_ms: float | None = None
        self.init_error: dict | None = None

    def ran_ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000.0

    # -- the runner's frames -------------------------------------------------

    def initialised(self, payload: bytes) -> bool:
        """The ``I`` frame: whether the function's module loaded."""
        ok, self.init_ms, self.init_error = verdicts.init_report(payload)
        if ok:
            # the job's own time starts now: its limit is apart from the module's initialisation
            self.late_after = time.monotonic() + self.limits.timeout_ms / 1000.0 + LATE_OUTPUT_S
        return ok

    def take(self, kind: bytes, payload: bytes) -> bool:
        """Any other frame of the job; True once the runner's summary (``X``) has come."""
        if kind in protocol.STREAM_NAMES:
            if self.late_bytes or time.monotonic() > self.late_after:
                self.late_bytes += len(payload)
            else:
                self.deliver(self.lines.feed(protocol.STREAM_NAMES[kind], payload))
        elif kind == b"T":
            self.capped = True
            self.flush(
                f"[lambdasite] output reached the log limit ({self.limits.max_log_bytes} bytes or "
                f"{self.limits.max_log_lines} lines); further output is dropped"
            )
        elif kind == b"R":
            self.result_frame = payload
        elif kind == b"X":
            self.summary = verdicts.summary_of(payload)
            return True
        else:
            raise SandboxError(f"runner sent an unknown frame {kind!r}", code="protocol_error")
        return False

    # -- output --------------------------------------------------------------

    def flush(self, *notes: str) -> None:
        """Deliver the output lines still partial, then ``notes`` from the platform."""
        self.deliver(self.lines.flush() + [self.lines.system(note) for note in notes])

    def note(self, text: str) -> None:
        self.deliver([self.lines.system(text)])

    # -- results -------------------------------------------------------------

    def stopped(self, status: str, error: dict | None) -> RunResult:
        """The result of a job that ended without the runner's verdict on it."""
        return RunResult(
            status=status,
            error=error,
            duration_ms=self.ran_ms(),
            lines=self.lines.count,
            container_id=self.container_id,
            reused=self.reused,
        )

    def died(self, state: dict, about: str) -> RunResult:
        """The whole container died mid-job: killed for memory, or a SandboxError naming ``about``."""
        return verdicts.from_engine(
            state,
            self.limits,
            ran_ms=self.ran_ms(),
            lines=self.lines.count,
            container_id=self.container_id,
            reused=self.reused,
            about=about,
        )

    def verdict(self) -> RunResult:
        """The result of a job the runner saw end, telling the caller what output was not stored."""
        lines, limits = self.lines, self.limits
        result = verdicts.from_summary(
            self.summary,
            self.result_frame,
            limits,
            lines=lines.count,
            container_id=self.container_id,
            reused=self.reused,
        )
        if self.late_bytes:
            lines.dropped_bytes += self.late_bytes
            self.note(
                f"[lambdasite] {self.late_bytes} bytes of output still in transit at the time limit "
                f"were not stored"
            )
        if lines.dropped_bytes and not self.capped:
            self.note(
                f"[lambdasite] output reached the log limit ({limits.max_log_lines} lines); "
                f"further output is dropped"
            )
        dropped = result.dropped_bytes + lines.dropped_bytes
        if dropped:
            self.note(f"[lambdasite] {dropped} bytes of output over the limit were dropped")
        return replace(
            result,
            init_ms=self.init_ms,
            lines=lines.count,
            dropped_bytes=dropped,
            log_bytes=max(0, result.log_bytes - lines.dropped_bytes),
        )

    def child_died_silently(self, result: RunResult) -> bool:
        """Whether the job's process died without reporting (the cell must not be trusted again)."""
        return result.status != "succeeded" and (self.result_frame is None or self.summary.get("oom"))
