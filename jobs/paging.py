"""Keyset paging of job lists, newest first: one paginator for the API and the dashboard.

DRF's CursorPagination keys on ``created_at`` (an index of every list), so a page
costs the same however deep it is, and new jobs arriving at the top never shift
the pages a reader is walking through."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import exceptions as drf_exceptions
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from lambdasite.exceptions import ValidationFailed


class JobCursorPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


@dataclass
class Page:
    rows: list
    next: str | None
    previous: str | None


def job_page(request, qs, *, page_size: int | None = None) -> tuple[JobCursorPagination, Page]:
    """One page of ``qs`` for ``request`` (a DRF or a plain Django request); a forged or stale
    cursor is the client's error (400), not a missing resource."""
    paginator = JobCursorPagination()
    if page_size is not None:
        paginator.page_size = page_size
    drf_request = request if isinstance(request, Request) else Request(request)
    try:
        rows = paginator.paginate_queryset(qs, drf_request)
    except drf_exceptions.NotFound:
        raise ValidationFailed(
            "cursor: invalid cursor", details={"fields": {"cursor": ["invalid cursor"]}}
        ) from None
    return paginator, Page(
        rows=list(rows), next=paginator.get_next_link(), previous=paginator.get_previous_link()
    )
