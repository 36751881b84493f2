"""What a run reached and was given, in words for the job page (its attempts' history)."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import filesizeformat, pluralize

register = template.Library()


@register.filter
def attempt_reach(attempt) -> list[str]:
    """An attempt's secret revisions, masked values and egress as short phrases (none: nothing to say)."""
    parts = []
    if attempt.secret_revisions:
        given = ", ".join(f"{secret} revision {revision}" for secret, revision in attempt.secret_revisions)
        parts.append(f"secrets {given}")
    if attempt.masked:
        parts.append(f"{attempt.masked} secret value{pluralize(attempt.masked)} masked in its output")
    if attempt.egress_bytes:
        parts.append(f"{filesizeformat(attempt.egress_bytes)} through egress")
    if attempt.connections_dropped:
        n = attempt.connections_dropped
        parts.append(f"{n} connection{pluralize(n)} counted, not recorded")
    return parts
