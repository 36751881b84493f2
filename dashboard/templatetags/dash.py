"""Formatting for the dashboard templates."""

from __future__ import annotations

import math

from django import template
from django.utils.html import format_html

register = template.Library()

STATUS_LABELS = {"timed_out": "timed out"}


@register.filter
def ms(value) -> str:
    """A duration in milliseconds, readable: 0.8 ms, 37 ms, 4.21 s, 3 min 5 s."""
    if value is None or value == "":
        return "—"
    value = float(value)
    if value < 10:
        return f"{value:.1f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(int(value // 1000), 60)
    return f"{minutes} min {seconds} s"


@register.filter
def short(value) -> str:
    return str(value)[:8]


@register.filter
def number(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{int(digits)}f}"


TINY_MONEY = 0.0001  # below it, a cost reads "< 0.0001": more digits say nothing to a person


@register.filter
def money(value, currency: str = "") -> str:
    """An amount at a sensible precision: 1,234.50 and 0.50 in cents, 0.012 and 0.00046 to two
    significant digits, "< 0.0001" below that (never a misleading 0.00, never 0.000000200).
    With a currency, joined by a no-break space so the pair never wraps."""
    value = float(value or 0)
    size = abs(value)
    if size == 0 or size >= 1:
        text = f"{value:,.2f}"
    elif size < TINY_MONEY:
        text = f"< {TINY_MONEY}" if value > 0 else f"> -{TINY_MONEY}"
    else:
        value = round(value, 1 - math.floor(math.log10(size)))  # two significant digits
        text = f"{value:.{max(2, 1 - math.floor(math.log10(abs(value))))}f}"
    return f"{text}\u00a0{currency}" if currency else text


@register.filter
def attempt_summary(job) -> str:
    """Which attempt a job is on, counted within its current run: a requeue starts a new run
    with a fresh retry budget, while ``job.attempts`` keeps counting across runs."""
    run = job.attempts - job.retry_base
    plural = "s" if job.retry_base != 1 else ""
    if run == 0:
        return f"requeued after {job.retry_base} attempt{plural}" if job.retry_base else "no attempt yet"
    text = f"attempt {run}"
    if job.max_retries and run <= job.max_retries + 1:  # system failures may go beyond the budget
        text += f" of up to {job.max_retries + 1}"
    if job.retry_base:
        text += f" since the requeue ({job.attempts} in all)"
    return text


@register.filter
def percent(value) -> str:
    """A 0..1 ratio as a whole percentage; None (nothing finished yet) as a dash."""
    if value is None:
        return "—"
    return f"{float(value) * 100:.0f}%"


@register.simple_tag
def badge(status: str, job_id=None):
    """A status badge; with a job id, live.js updates it when the job's status changes."""
    label = STATUS_LABELS.get(status, status)
    if job_id is not None:
        return format_html('<span class="badge s-{}" data-job-status="{}">{}</span>', status, job_id, label)
    return format_html('<span class="badge s-{}">{}</span>', status, label)


@register.simple_tag
def when(value):
    """A timestamp as <time>: UTC in the HTML, local and relative once live.js runs."""
    if value is None:
        return "—"
    return format_html(
        '<time datetime="{}" data-relative title="{} UTC">{} UTC</time>',
        value.isoformat(),
        value.strftime("%Y-%m-%d %H:%M:%S"),
        value.strftime("%Y-%m-%d %H:%M:%S"),
    )
