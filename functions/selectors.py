"""Reads of functions, scoped to a tenant: another tenant's function is simply not found."""

from __future__ import annotations

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from jobs.models import Job

from .models import Alias, BuildLogLine, BuildStatus, DependencyLayer, Function, FunctionVersion


def function_list(*, tenant_ids) -> QuerySet[Function]:
    return Function.objects.filter(tenant_id__in=tenant_ids).select_related("tenant").order_by("name")


def function_get(*, tenant_ids, name: str) -> Function | None:
    return (
        Function.objects.filter(tenant_id__in=tenant_ids, name=name).select_related("tenant__quota").first()
    )


def version_list(*, function: Function) -> QuerySet[FunctionVersion]:
    return function.versions.select_related("layer").order_by("-number")


def version_get(*, function: Function, number: int) -> FunctionVersion | None:
    return function.versions.select_related("layer").filter(number=number).first()


def latest_ready(*, function: Function) -> FunctionVersion | None:
    return function.versions.filter(status=BuildStatus.READY).order_by("-number").first()


def alias_list(*, function: Function) -> QuerySet[Alias]:
    return function.aliases.select_related("version", "additional_version").order_by("name")


def alias_get(*, function: Function, name: str) -> Alias | None:
    return function.aliases.select_related("version", "additional_version").filter(name=name).first()


def build_log(*, version: FunctionVersion, after: int = 0, limit: int = 1000) -> list[BuildLogLine]:
    return list(version.build_log.filter(seq__gt=after).order_by("seq")[:limit])


def recent_jobs(*, function: Function, limit: int = 20) -> list[Job]:
    return list(Job.objects.filter(function=function).order_by("-created_at")[:limit])


def function_stats(*, functions: list[Function]) -> dict[int, dict]:
    """Per function: its last job's status and how many jobs it had in the last hour."""
    if not functions:
        return {}
    hour_ago = timezone.now() - timezone.timedelta(hours=1)
    rows = (
        Job.objects.filter(function__in=functions)
        .values("function_id")
        .annotate(last=Max("created_at"), last_hour=Count("id", filter=Q(created_at__gte=hour_ago)))
    )
    stats = {row["function_id"]: {"last_hour": row["last_hour"], "last_status": None} for row in rows}
    for row in rows:
        last = (
            Job.objects.filter(function_id=row["function_id"], created_at=row["last"])
            .values_list("status", flat=True)
            .first()
        )
        stats[row["function_id"]]["last_status"] = last
    return stats


def layer_users(*, layer: DependencyLayer) -> QuerySet[FunctionVersion]:
    return layer.versions.select_related("function__tenant").order_by(
        "function__tenant__slug", "function__name"
    )
