"""Small server-rendered SVG charts: no JavaScript library, readable without scripts.

Times are written in UTC, saying so ("12:00 UTC"), and carry their instant (``data-time``) so that
``static/js/charts.js`` rewrites them in the reader's zone, like every other time on the page."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

W, H = 640, 180
PAD_L, PAD_R, PAD_T, PAD_B = 52, 8, 10, 22
# A y label's longest form, "1.25 ms", is 7 characters; at 11 px (CSS .axis) a character is at
# most ~0.62 em wide, so 7 characters take ~48 px: the left margin less the 4 px gap.
LABEL_CHARS = 7

# Duration units, smallest first, each used while the axis top stays below the limit in ms.
_DURATION_UNITS = ((1.0, "ms", 1000.0), (1000.0, "s", 600_000.0), (60_000.0, "min", math.inf))


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Axis:
    """A y axis: its top in the data's unit, and how its values are written."""

    top: float
    scale: float = 1.0
    unit: str = ""

    def label(self, value: float) -> str:
        return f"{_fmt(value / self.scale)}{self.unit}"


def _axis(peak: float, unit: str) -> Axis:
    """A nice top for ``peak``; durations (unit "ms") in ms, s or min, whichever keeps labels short."""
    if unit != "ms":
        return Axis(_nice_max(peak), unit=unit)
    for scale, name, limit in _DURATION_UNITS:
        top = _nice_max(peak / scale) * scale
        if top < limit:
            return Axis(top, scale, f" {name}")
    raise AssertionError("the last unit has no limit")


def _instant(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time_attrs(when: datetime, prefix: str = "", suffix: str = "") -> str:
    """The attributes charts.js reads to say ``prefix + local HH:MM + suffix``."""
    attrs = f' data-time="{_instant(when)}"'
    if prefix:
        attrs += f' data-prefix="{escape(prefix)}"'
    if suffix:
        attrs += f' data-suffix="{escape(suffix)}"'
    return attrs


def _hover(when: datetime, value: str, name: str = "") -> str:
    """A point's hover title: ``p95 12:00 UTC: 2.35 s``, and in the reader's zone once localised."""
    prefix = f"{name} " if name else ""
    suffix = f": {value}"
    return (
        f"<title{_time_attrs(when, prefix, suffix)}>"
        f"{escape(prefix)}{when.astimezone(UTC):%H:%M} UTC{escape(suffix)}</title>"
    )


def _frame(axis: Axis, times: list[datetime], label: str) -> list[str]:
    parts = [
        f'<svg viewBox="0 0 {W} {H}" class="chart" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
    ]
    for frac in (0, 0.5, 1):
        y = PAD_T + (H - PAD_T - PAD_B) * (1 - frac)
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" class="axis" '
            f'text-anchor="end">{escape(axis.label(axis.top * frac))}</text>'
        )
    if times:
        for index, anchor in ((0, "start"), (len(times) // 2, "middle"), (len(times) - 1, "end")):
            x = PAD_L + (W - PAD_L - PAD_R) * (index + 0.5) / len(times)
            parts.append(
                f'<text x="{x:.1f}" y="{H - 6}" class="axis" text-anchor="{anchor}"'
                f"{_time_attrs(times[index])}>{times[index].astimezone(UTC):%H:%M} UTC</text>"
            )
    return parts


def bars(values: list[float], times: list[datetime], *, label: str, unit: str = "") -> SafeString:
    axis = _axis(max(values, default=0), unit)
    top = axis.top
    parts = _frame(axis, times, label)
    slot = (W - PAD_L - PAD_R) / max(len(values), 1)
    plot_h = H - PAD_T - PAD_B
    for index, (value, when) in enumerate(zip(values, times, strict=True)):
        h = plot_h * value / top
        x = PAD_L + slot * index
        parts.append(
            f'<rect x="{x + slot * 0.1:.1f}" y="{PAD_T + plot_h - h:.1f}" '
            f'width="{max(slot * 0.8, 1):.1f}" height="{h:.1f}" class="bar">'
            f"{_hover(when, axis.label(value))}</rect>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def lines(
    series: dict[str, list[float | None]], times: list[datetime], *, label: str, unit: str = ""
) -> SafeString:
    """One polyline per series; None is a gap (no jobs in that bucket). With unit "ms" the values
    are durations, and the axis reads in ms, s or min."""
    axis = _axis(max((v for values in series.values() for v in values if v is not None), default=0), unit)
    top = axis.top
    parts = _frame(axis, times, label)
    slot = (W - PAD_L - PAD_R) / max(len(times), 1)
    plot_h = H - PAD_T - PAD_B
    for index, (name, values) in enumerate(series.items()):
        runs, run = [], []
        for i, value in enumerate(values):
            if value is None:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append((PAD_L + slot * (i + 0.5), PAD_T + plot_h * (1 - value / top), value, times[i]))
        if run:
            runs.append(run)
        for points in runs:
            if len(points) > 1:
                coords = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
                parts.append(f'<polyline points="{coords}" class="series s{index}"/>')
            for x, y, value, when in points:
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" class="dot s{index}">'
                    f"{_hover(when, axis.label(value), name)}</circle>"
                )
    parts.append("</svg>")
    return mark_safe("".join(parts))
