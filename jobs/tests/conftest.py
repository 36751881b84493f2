"""Fixtures of the jobs tests (the personas and real components are in the project's conftest)."""

from __future__ import annotations

import pytest


@pytest.fixture
def fast_retries(settings):
    settings.RETRY_BACKOFF_BASE_S = 0.3
    settings.RETRY_BACKOFF_FACTOR = 2.0
    settings.REDISPATCH_AFTER_S = 0.5
    settings.LEASE_RENEW_S = 0.2
