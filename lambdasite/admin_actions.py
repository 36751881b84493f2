"""The shape of operators' bulk admin actions: apply a change to each selected object, then say
how many were changed."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib import messages


def each_selected(done: str) -> Callable:
    """Make ``change(model_admin, request, obj)`` an admin action over the selected objects that
    then reports "<count> <done>." as a success message (``done``: e.g. "schedule(s) paused").
    Put ``@admin.action`` above it."""

    def decorate(change: Callable) -> Callable:
        @functools.wraps(change)
        def action(model_admin, request, queryset) -> None:
            for obj in queryset:
                change(model_admin, request, obj)
            model_admin.message_user(request, f"{queryset.count()} {done}.", messages.SUCCESS)

        return action

    return decorate
