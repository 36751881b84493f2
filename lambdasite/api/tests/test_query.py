"""lambdasite.api.query: query strings read as Django reads them, refused with one named field."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from lambdasite.api.query import LogsFilter, WaitFilter
from lambdasite.exceptions import ValidationFailed


def test_wait_is_a_number_of_seconds_up_to_wait_max(settings):
    settings.WAIT_MAX_S = 30
    assert WaitFilter.parse(QueryDict(""))["wait"] == 0.0
    assert WaitFilter.parse(QueryDict("wait="))["wait"] == 0.0
    assert WaitFilter.parse(QueryDict("wait=2.5&other=1"))["wait"] == 2.5
    for bad in ("-1", "abc", "31", "nan", "inf"):
        with pytest.raises(ValidationFailed) as refused:
            WaitFilter.parse(QueryDict(f"wait={bad}"))
        assert refused.value.message == "wait: must be a number of seconds between 0 and 30"


def test_line_paging_defaults_and_bounds():
    assert LogsFilter.parse(QueryDict("")) == {"after": 0, "limit": 1000}
    assert LogsFilter.parse(QueryDict("after=7&limit=5")) == {"after": 7, "limit": 5}
    for blank in ("limit=", "after="):  # given but empty: not an integer (not the default, as a form has it)
        with pytest.raises(ValidationFailed, match="must be an integer"):
            LogsFilter.parse(QueryDict(blank))
    with pytest.raises(ValidationFailed, match="limit: must be between 1 and 5000"):
        LogsFilter.parse(QueryDict("limit=0"))
    with pytest.raises(ValidationFailed, match="after: must be an integer"):
        LogsFilter.parse(QueryDict("after=x"))
