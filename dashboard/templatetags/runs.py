"""What a run was and who asked for it, in words: the jobs list's and the job page's "what" and
"trigger", the duration bar, and the humanised facts of the run console."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html

from jobs.models import FINISHED, Trigger

from .dash import ms

register = template.Library()

CODE_LINE_CHARS = 48  # of the first line of inline code, in a table cell


def first_code_line(code: str, limit: int = CODE_LINE_CHARS) -> str:
    """The first non-blank line of some code, stripped and cut to ``limit`` characters."""
    line = next((text.strip() for text in code.splitlines() if text.strip()), "")
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _code_head(job) -> str:
    """The start of an inline job's code without reading the column when a list left it out
    (``code_head`` annotated by the list instead): a row never costs a query."""
    head = getattr(job, "code_head", None)
    if head is not None:
        return head
    return "" if "code" in job.get_deferred_fields() else job.code


@register.filter
def what_text(job) -> str:
    """``resize@v3 via prod``, or ``inline · python · def main(a, b):``."""
    if job.function_name:
        text = f"{job.function_name}@v{job.version_number}"
        return f"{text} via {job.alias}" if job.alias else text
    line = first_code_line(_code_head(job))
    return f"inline · {job.runtime}" + (f" · {line}" if line else "")


@register.simple_tag
def what(job):
    """What ran, with the function (if it still exists) linked."""
    if job.function_name:
        name = f"{job.function_name}@v{job.version_number}"
        shown = (
            format_html(
                '<a href="{}">{}</a>', reverse("dashboard:function-detail", args=[job.function_name]), name
            )
            if job.function_id
            else format_html('{} <span class="muted">(deleted)</span>', name)
        )
        via = (
            format_html(' <span class="muted">via</span> <span class="mono">{}</span>', job.alias)
            if job.alias
            else ""
        )
        return format_html('<span class="what"><span class="mono">{}</span>{}</span>', shown, via)
    line = first_code_line(_code_head(job))
    code = format_html(' · <code title="the first line of its code">{}</code>', line) if line else ""
    return format_html(
        '<span class="what"><span class="muted">inline · {}</span>{}</span>', job.runtime, code
    )


@register.filter
def trigger_text(job) -> str:
    """``API key ci``, ``alice@example.com``, ``schedule nightly``; "" when not recorded."""
    if job.trigger == Trigger.API_KEY:
        return f"API key {job.trigger_name}"
    if job.trigger == Trigger.SCHEDULE:
        return f"schedule {job.trigger_name}"
    if job.trigger == Trigger.ROUTE:
        return f"route {job.trigger_name}"
    if job.trigger == Trigger.PARENT:
        return f"step {job.trigger_name} of a durable run"
    return job.trigger_name if job.trigger == Trigger.DASHBOARD else ""


@register.simple_tag
def trigger(job):
    """Who or what asked for the run: the user, the key's name, the schedule (linked while it exists)."""
    if job.trigger == Trigger.API_KEY:
        return format_html(
            '<span class="trigger"><span class="muted">API key</span> {}</span>', job.trigger_name
        )
    if job.trigger == Trigger.SCHEDULE:
        name = (
            format_html(
                '<a href="{}">{}</a>',
                reverse("dashboard:schedule-detail", args=[job.trigger_name]),
                job.trigger_name,
            )
            if job.schedule_id
            else format_html('{} <span class="muted">(deleted)</span>', job.trigger_name)
        )
        return format_html('<span class="trigger"><span class="muted">schedule</span> {}</span>', name)
    if job.trigger == Trigger.DASHBOARD:
        return format_html('<span class="trigger" title="on the dashboard">{}</span>', job.trigger_name)
    if job.trigger == Trigger.ROUTE:
        return format_html(
            '<span class="trigger"><span class="muted">route</span> <code>{}</code></span>', job.trigger_name
        )
    if job.trigger == Trigger.PARENT:  # a durable run's invoke or map step
        run = (
            format_html(
                '<a href="{}" class="mono">{}</a>',
                reverse("dashboard:job-detail", args=[job.parent_id]),
                str(job.parent_id)[:8],
            )
            if job.parent_id
            else format_html('<span class="muted">(deleted)</span>')
        )
        return format_html(
            '<span class="trigger"><span class="muted">step</span> {} <span class="muted">of run</span> {}</span>',  # noqa: E501
            job.trigger_name,
            run,
        )
    return format_html('<span class="trigger muted" title="{}">—</span>', "not recorded for jobs this old")


@register.filter
def longest_duration(jobs) -> float:
    return max((job.duration_ms or 0.0 for job in jobs), default=0.0)


@register.filter
def share(value, whole) -> int:
    """``value`` as a whole percentage of ``whole`` (the duration bar's width); at least 1 when
    there is any value, so a short run still shows."""
    if not value or not whole:
        return 0
    return max(1, min(100, round(float(value) * 100 / float(whole))))


@register.filter
def retries(count) -> str:
    """``none``, ``1 retry``, ``up to 3 retries`` (a job's retry budget)."""
    if not count:
        return "none"
    return "1 retry" if count == 1 else f"up to {count} retries"


@register.filter
def announcement(job) -> str:
    """What a screen reader hears when the job's status changes: ``Job succeeded in 1.20 s``."""
    status = job.status.replace("_", " ")
    if job.status in FINISHED and job.duration_ms is not None:
        joint = "in" if job.status == "succeeded" else "after"
        return f"Job {status} {joint} {ms(job.duration_ms)}"
    return f"Job {status}"


@register.simple_tag
def clock(value):
    """A time of day as <time>: UTC in the HTML, the reader's local time once live.js runs (the
    date and the relative time in its title)."""
    if value is None:
        return "—"
    return format_html(
        '<time datetime="{}" data-clock title="{} UTC">{} UTC</time>',
        value.isoformat(),
        value.strftime("%Y-%m-%d %H:%M:%S"),
        value.strftime("%H:%M:%S"),
    )
