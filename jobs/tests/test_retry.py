"""The retry policy: which status an attempt's verdict leads to, and how long a retry waits.

``retry.next_status`` is pure (status in, next status out): the table below is the policy."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from jobs.models import Status
from jobs.services import lifecycle, retry

S = Status
# verdict, cancel requested, max_retries, user attempts, system failure, system failures
#   -> next status, backoff step, back in line
TABLE = [
    # success and cancellation end the job whatever the counts
    (S.SUCCEEDED, False, 3, 1, False, 0, S.SUCCEEDED, None, False),
    (S.SUCCEEDED, True, 3, 1, False, 0, S.CANCELLED, None, False),
    (S.FAILED, True, 3, 1, False, 0, S.CANCELLED, None, False),
    (S.LOST, True, 3, 1, True, 1, S.CANCELLED, None, False),
    # no retries: the attempt's own verdict is the job's
    (S.FAILED, False, 0, 1, False, 0, S.FAILED, None, False),
    (S.TIMED_OUT, False, 0, 1, False, 0, S.TIMED_OUT, None, False),
    (S.KILLED, False, 0, 1, False, 0, S.KILLED, None, False),
    # user failures are retried with growing backoff until max_retries, then dead
    (S.FAILED, False, 3, 1, False, 0, S.RETRYING, 1, False),
    (S.TIMED_OUT, False, 3, 2, False, 0, S.RETRYING, 2, False),
    (S.KILLED, False, 3, 3, False, 0, S.RETRYING, 3, False),
    (S.FAILED, False, 3, 4, False, 0, S.DEAD, None, False),
    # a verdict that is not retryable ends the job even with retries left
    (S.CANCELLED, False, 3, 1, False, 0, S.DEAD, None, False),
    # system failures have their own budget: a lost worker's job goes straight back in line...
    (S.LOST, False, 0, 0, True, 1, S.QUEUED, None, True),
    (S.LOST, False, 3, 0, True, 3, S.QUEUED, None, True),
    # ...a failing sandbox backs off; both end the job once the budget (3) is spent
    (S.FAILED, False, 0, 0, True, 2, S.RETRYING, 2, False),
    (S.FAILED, False, 0, 0, True, 4, S.FAILED, None, False),
    (S.LOST, False, 2, 0, True, 4, S.DEAD, None, False),
]


@pytest.mark.parametrize(
    "verdict, cancel, max_retries, user_attempts, system, failures, status, step, in_line", TABLE
)
def test_the_policy_table(
    verdict, cancel, max_retries, user_attempts, system, failures, status, step, in_line
):
    decision = retry.next_status(
        verdict,
        cancel_requested=cancel,
        max_retries=max_retries,
        user_attempts=user_attempts,
        system_failure=system,
        system_failures=failures,
        system_retries=3,
    )
    assert (decision.status, decision.backoff_step, decision.back_in_line) == (status, step, in_line)
    assert decision.finished == (status not in (S.QUEUED, S.RETRYING))


def test_backoff_doubles_is_capped_and_jittered_within_half_to_all_of_a_step():
    steps = [retry.backoff_s(n, base=1.0, factor=2.0, cap=5.0, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)]
    assert steps == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [retry.backoff_s(n, base=1.0, factor=2.0, cap=5.0, rand=lambda: 0.0) for n in (1, 2, 3)] == [
        0.5,
        1.0,
        2.0,
    ]


def test_backoff_grows_and_is_capped(settings):
    settings.RETRY_BACKOFF_BASE_S, settings.RETRY_BACKOFF_FACTOR, settings.RETRY_BACKOFF_CAP_S = 1.0, 2.0, 5.0
    assert [lifecycle.retry_delay_s(n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [
        1.0,
        2.0,
        4.0,
        5.0,
        5.0,
    ]
    assert [lifecycle.retry_delay_s(n, rand=lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert django_settings.RETRY_BACKOFF_CAP_S == 5.0
