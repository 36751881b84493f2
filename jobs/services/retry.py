"""The retry policy, as pure functions: what an attempt's verdict means for its job, and how long
a retry waits. No database, no clock, no settings: the lifecycle layer supplies the facts."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..models import RETRYABLE, Status


@dataclass(frozen=True)
class Next:
    """The job's next state after an attempt ends."""

    status: str
    backoff_step: int | None = None  # retrying: the delay of this (1-based) retry applies
    back_in_line: bool = False  # waiting again at its original place, at once (a lost worker's job)

    @property
    def finished(self) -> bool:
        return self.status not in (Status.QUEUED, Status.RETRYING)


def next_status(
    verdict: str,
    *,
    cancel_requested: bool,
    max_retries: int,
    user_attempts: int,
    system_failure: bool = False,
    system_failures: int = 0,
    system_retries: int = 3,
) -> Next:
    """The job's next status after an attempt whose verdict is ``verdict``.

    ``user_attempts`` counts the attempts that failed by the user's code since the last
    manual requeue, this one included; ``system_failures`` counts the attempts lost to
    workers or the sandbox, this one included. System failures are retried on their own
    budget, never the user's: a lost worker's job goes straight back in line, a failing
    sandbox gets a backoff."""
    if cancel_requested:
        return Next(Status.CANCELLED)
    if verdict == Status.SUCCEEDED:
        return Next(Status.SUCCEEDED)
    if system_failure:
        if system_failures <= system_retries:
            if verdict == Status.LOST:
                return Next(Status.QUEUED, back_in_line=True)
            return Next(Status.RETRYING, backoff_step=system_failures)
        return Next(Status.DEAD if max_retries else Status.FAILED)
    if verdict in RETRYABLE and max_retries > 0 and user_attempts <= max_retries:
        return Next(Status.RETRYING, backoff_step=user_attempts)
    return Next(Status.DEAD if max_retries > 0 else verdict)


def backoff_s(step: int, *, base: float, factor: float, cap: float, rand=random.random) -> float:
    """Delay before retry ``step`` (1-based): exponential, capped, with jitter in [50%, 100%] of the step."""
    return min(cap, base * factor ** (step - 1)) * (0.5 + 0.5 * rand())
