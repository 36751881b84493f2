"""Schedules: the list, a schedule's page (edit with a live preview of the next fire times, history),
creating one, pause/resume, run now, delete."""

from __future__ import annotations

import json
from datetime import UTC

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from functions.selectors import function_list
from lambdasite.exceptions import ApplicationError
from schedules import selectors
from schedules.describe import describe
from schedules.models import Schedule
from schedules.services import crontab, manage, ticks

from ..forms import in_words, service_error
from ..tenancy import dashboard_view
from .common import found_or_404, live_page, no_store
from .redirects import next_or

ZONES = ("UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "America/New_York", "America/Chicago",
         "America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney")  # fmt: skip


def schedule_or_404(request, name: str) -> Schedule:
    return found_or_404(selectors.schedule_get(tenant_ids=[request.ctx.tenant.id], name=name), "schedule")


@dashboard_view()
def schedule_list(request):
    schedules = list(selectors.schedule_list(tenant_ids=[request.ctx.tenant.id]))
    rows = [
        {
            "schedule": s,
            "next": manage.upcoming(s, 1),
            "words": describe(s.cron),
            "last": s.runs.select_related("job").order_by("-tick_at").first(),
        }
        for s in schedules
    ]
    context = {"rows": rows, "live_ws": f"/ws/tenants/{request.ctx.tenant.slug}/"}
    return live_page(request, render(request, "dashboard/schedule_list.html", context))


def _form_from(schedule: Schedule | None) -> dict:
    if schedule is None:
        return {
            **dict.fromkeys(("name", "function", "qualifier", "description"), ""),
            "cron": "0 * * * *",
            "timezone": "UTC",
            "args": "[]",
            "overlap": "skip",
            "catch_up": "none",
            "max_failures": "5",
        }
    return {
        "name": schedule.name,
        "function": schedule.function.name,
        "qualifier": schedule.qualifier,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "args": json.dumps(schedule.args),
        "overlap": schedule.overlap,
        "catch_up": schedule.catch_up,
        "max_failures": str(schedule.max_failures),
        "description": schedule.description,
    }


def _spec(form: dict) -> manage.ScheduleSpec:
    try:
        args = json.loads(form["args"] or "[]")
    except ValueError:
        args = {"not": "json"}  # refused by the service: "args: must be a JSON array"
    try:
        max_failures = int(form["max_failures"] or 0)
    except ValueError:
        max_failures = -1
    if max_failures < 0:
        raise manage._fail("max_failures", "must be a whole number (0: never pause)")
    return manage.ScheduleSpec(
        cron=form["cron"].strip(),
        timezone=form["timezone"].strip() or "UTC",
        function=form["function"],
        qualifier=form["qualifier"].strip(),
        args=args,
        overlap=form["overlap"],
        catch_up=form["catch_up"],
        max_failures=max_failures,
        description=form["description"],
    )


def _edit(request, schedule: Schedule | None):
    form = _form_from(schedule)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        if not request.ctx.can_write:
            return redirect("dashboard:schedules")
        form.update({k: request.POST.get(k, form[k]) for k in form})
        try:
            spec = _spec(form)
            if schedule is None:
                schedule = manage.schedule_create(
                    tenant=request.ctx.tenant, name=form["name"].strip(), spec=spec
                )
                messages.success(request, f"Schedule {schedule.name} created.")
            else:
                schedule = manage.schedule_update(schedule=schedule, spec=spec)
                messages.success(request, f"Schedule {schedule.name} saved.")
            return redirect("dashboard:schedule-detail", name=schedule.name)
        except ApplicationError as exc:
            service_error(exc, form, errors)
            status = 400
    context = {
        "schedule": schedule,
        "form": form,
        "errors": errors,
        "words": describe(form["cron"]),
        "functions": list(function_list(tenant_ids=[request.ctx.tenant.id])),
        "zones": ZONES,
        "upcoming": _upcoming(schedule, form),
        "runs": selectors.run_list(schedule=schedule, limit=100) if schedule is not None else [],
        "live_ws": f"/ws/tenants/{request.ctx.tenant.slug}/" if schedule is not None else "",
    }
    return live_page(request, render(request, "dashboard/schedule_detail.html", context, status=status))


def _upcoming(schedule: Schedule | None, form: dict) -> list[str]:
    """The preview on load: a paused schedule's none; else the next fire times of the form's expression
    (a new schedule's default, or what was just refused), in its zone."""
    if schedule is not None and not schedule.enabled:
        return []
    cron, zone_name = form["cron"].strip(), form["timezone"].strip() or "UTC"
    try:
        crontab.zone(zone_name)
    except ApplicationError:
        return []
    return [fire_time_label(t, zone_name) for t in crontab.upcoming(cron, zone_name, timezone.now())]


@dashboard_view()
def schedule_new(request):
    return _edit(request, None)


@dashboard_view()
def schedule_detail(request, name):
    return _edit(request, schedule_or_404(request, name))


@dashboard_view()
def schedule_preview(request):
    """The next fire times of an expression and zone, for the form's live preview."""
    try:
        times = crontab.check(
            request.GET.get("cron", ""),
            request.GET.get("timezone", "UTC") or "UTC",
            min_interval_s=request.ctx.tenant.quota.min_schedule_interval_s,
            now=timezone.now(),
        )
    except ApplicationError as exc:
        return no_store(JsonResponse({"error": in_words(exc.message)}, status=400))
    zone_name = request.GET.get("timezone", "UTC") or "UTC"
    return no_store(
        JsonResponse(
            {
                "description": describe(request.GET.get("cron", "")),
                "times": [t.isoformat() for t in times],
                "labels": [fire_time_label(t, zone_name) for t in times],
            }
        )
    )


def fire_time_label(when, zone_name: str) -> str:
    """A fire time as the schedule sees it, in its own zone (the browser's zone is not the
    schedule's), with the instant in UTC: ``Mon 07 Dec 2026 09:00 CET (2026-12-07T08:00:00Z)``."""
    local = when.astimezone(crontab.zone(zone_name))
    instant = when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()} ({instant})"


def _act(request, name, action, done):
    schedule = schedule_or_404(request, name)
    try:
        action(schedule)
        messages.success(request, done)
    except ApplicationError as exc:
        messages.error(request, in_words(exc.message))
    return redirect(next_or(request, "dashboard:schedules"))


@require_POST
@dashboard_view(write=True)
def schedule_pause(request, name):
    spec = manage.ScheduleSpec(enabled=False)
    return _act(request, name, lambda s: manage.schedule_update(schedule=s, spec=spec), f"Paused {name}.")


@require_POST
@dashboard_view(write=True)
def schedule_resume(request, name):
    spec = manage.ScheduleSpec(enabled=True)
    return _act(request, name, lambda s: manage.schedule_update(schedule=s, spec=spec), f"Resumed {name}.")


@require_POST
@dashboard_view(write=True)
def schedule_run(request, name):
    return _act(request, name, lambda s: ticks.schedule_run_now(schedule=s), f"{name} is running now.")


@require_POST
@dashboard_view(write=True)
def schedule_delete(request, name):
    schedule = schedule_or_404(request, name)
    manage.schedule_delete(schedule=schedule)
    messages.success(request, f"Deleted {name}.")
    return redirect("dashboard:schedules")
