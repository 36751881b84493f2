"""Reads of routes, scoped to a function (and so to its tenant), and of a route's job outcome."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from functions.models import Function
from jobs.models import Job

from .models import Route


def route_list(*, function: Function) -> QuerySet[Route]:
    return Route.objects.filter(function=function).select_related("function", "tenant").order_by("path")


def route_get(*, function: Function, route_id: str) -> Route | None:
    """One route of the function; a malformed id is simply not found."""
    try:
        uuid.UUID(str(route_id))
    except ValueError:
        return None
    return route_list(function=function).filter(pk=route_id).first()


def job_outcome(job_id: str) -> tuple | None:
    """(status, result, error) of a job."""
    return Job.objects.filter(pk=job_id).values_list("status", "result", "error").first()
