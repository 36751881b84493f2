"""The new-job page's examples say what their own arguments make them do, and fit the page's defaults
(test_views.py runs every one of them in both runtimes with those defaults)."""

from __future__ import annotations

import json

from django.conf import settings

from dashboard.examples import EXAMPLES, TEMPLATES

BY_KEY = {example["key"]: example for example in EXAMPLES}


def test_each_title_matches_its_arguments():
    a, b = json.loads(BY_KEY["add"]["args"])
    assert f"({a} + {b})" in BY_KEY["add"]["title"]
    [numbers] = json.loads(BY_KEY["sum"]["args"])
    assert numbers == list(range(1, 6)) and "(1 to 5)" in BY_KEY["sum"]["title"]
    [seconds] = json.loads(BY_KEY["async"]["args"])
    assert f"wait {seconds:g} s" in BY_KEY["async"]["title"]
    [lines] = json.loads(BY_KEY["ticker"]["args"])
    assert f"{lines} times" in BY_KEY["ticker"]["title"]


def test_the_slow_ones_leave_room_for_a_cold_start_within_the_default_time_limit():
    """A second per line plus the async wait must stay well inside the default limit: a cold
    container start (~0.4 s here, more on a busy host) comes out of the same budget."""
    budget_s = settings.JOB_DEFAULT_TIMEOUT_MS / 1000
    [lines] = json.loads(BY_KEY["ticker"]["args"])
    [seconds] = json.loads(BY_KEY["async"]["args"])
    assert lines * 1.0 <= budget_s * 0.6 and seconds <= budget_s * 0.6


def test_every_example_has_both_runtimes_and_json_array_args():
    for example in EXAMPLES:
        assert example["python"].strip() and example["node"].strip(), example["key"]
        assert isinstance(json.loads(example["args"]), list), example["key"]
    assert TEMPLATES == {"python": EXAMPLES[0]["python"], "node": EXAMPLES[0]["node"]}
