"""Fixtures of the functions tests."""

from __future__ import annotations

import pytest

from functions.services import invoke


@pytest.fixture(autouse=True)
def _fresh_lookups():
    """Each test starts with this process's function lookups empty (Redis is flushed between tests too)."""
    invoke._views.clear()
    yield
    invoke._views.clear()
