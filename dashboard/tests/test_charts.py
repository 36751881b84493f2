"""The server-rendered SVG charts: y axes whose labels fit the margin, in a unit that suits the values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dashboard import charts

TIMES = [datetime(2025, 1, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=i) for i in range(3)]
CHAR_PX = 11 * 0.62  # the widest average glyph at the axis font size (11 px)


def y_labels(svg: str) -> list[str]:
    """The y axis's labels, bottom to top (the x axis's sit lower, at other x positions)."""
    x = charts.PAD_L - 4
    return re.findall(rf'<text x="{x}" y="[0-9.]+" class="axis" text-anchor="end">([^<]*)</text>', svg)


@pytest.mark.parametrize(
    ("peak_ms", "labels"),
    [
        (10.0, ["0 ms", "5 ms", "10 ms"]),
        (8.7, ["0 ms", "5 ms", "10 ms"]),
        (2.3, ["0 ms", "1.25 ms", "2.5 ms"]),
        (990.0, ["0 s", "0.5 s", "1 s"]),
        (2500.0, ["0 s", "1.25 s", "2.5 s"]),
        (2600.0, ["0 s", "2.5 s", "5 s"]),
        (120_000.0, ["0 s", "100 s", "200 s"]),
        (700_000.0, ["0 min", "10 min", "20 min"]),
    ],
)
def test_it_labels_run_times_in_a_unit_that_fits_the_margin(peak_ms, labels):
    svg = charts.lines(
        {"p50": [peak_ms / 2, None, 1.0], "p95": [peak_ms, None, 2.0]}, TIMES, label="Run", unit="ms"
    )
    assert y_labels(svg) == labels
    for text in labels:
        assert len(text) <= charts.LABEL_CHARS and len(text) * CHAR_PX <= charts.PAD_L - 4, text


def test_it_writes_hover_values_in_the_axis_unit():
    svg = charts.lines({"p95": [2345.0, 120.0, None]}, TIMES, label="Run", unit="ms")
    assert "UTC: 2.35 s</title>" in svg and "UTC: 0.12 s</title>" in svg


def test_it_keeps_counts_unitless():
    svg = charts.bars([0, 3, 7], TIMES, label="Jobs per minute")
    assert y_labels(svg) == ["0", "5", "10"]


def test_its_times_say_utc_and_carry_their_instant_for_the_readers_zone():
    """Without scripts the times read in UTC, saying so; charts.js rewrites each from its data-time."""
    svg = charts.lines({"p95": [2345.0, 120.0, None]}, TIMES, label="Run", unit="ms")
    x_labels = re.findall(r'<text [^>]*data-time="([^"]+)">([^<]*)</text>', svg)
    assert x_labels == [
        ("2025-01-01T12:00:00Z", "12:00 UTC"),
        ("2025-01-01T12:01:00Z", "12:01 UTC"),
        ("2025-01-01T12:02:00Z", "12:02 UTC"),
    ]
    assert (
        '<title data-time="2025-01-01T12:00:00Z" data-prefix="p95 " data-suffix=": 2.35 s">'
        "p95 12:00 UTC: 2.35 s</title>"
    ) in svg
    bars = charts.bars([1, 2, 3], TIMES, label="Jobs per minute")
    assert '<title data-time="2025-01-01T12:02:00Z" data-suffix=": 3">12:02 UTC: 3</title>' in bars


def test_a_time_in_another_zone_is_written_as_its_utc_instant():
    tokyo = [t.astimezone(timezone(timedelta(hours=9))) for t in TIMES]
    svg = charts.bars([1, 2, 3], tokyo, label="Jobs per minute")
    assert 'data-time="2025-01-01T12:00:00Z">12:00 UTC</text>' in svg
