"""Reads of secrets' metadata, scoped to a tenant; no value is ever read here."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import Tenant

from .models import Secret, SecretRevision


def _described(qs: QuerySet[Secret]) -> QuerySet[Secret]:
    """Each secret with its current revision's ``fingerprint`` and ``updated_by`` (its author)."""
    current = SecretRevision.objects.filter(secret=OuterRef("pk"), number=OuterRef("latest_number"))
    return qs.annotate(
        fingerprint=Subquery(current.values("fingerprint")[:1]),
        updated_by=Subquery(current.values("created_by_label")[:1]),
    )


def secret_list(*, tenant: Tenant) -> QuerySet[Secret]:
    return _described(Secret.objects.filter(tenant=tenant, deleted_at=None)).order_by("name")


def secret_get(*, tenant: Tenant, name: str) -> Secret | None:
    return _described(Secret.objects.filter(tenant=tenant, name=name, deleted_at=None)).first()


def secret_names(*, tenant: Tenant, among) -> set[str]:
    """Which of the names ``among`` are secrets of the tenant."""
    found = Secret.objects.filter(tenant=tenant, name__in=list(among), deleted_at=None)
    return set(found.values_list("name", flat=True))


def revision_list(*, secret: Secret) -> QuerySet[SecretRevision]:
    return secret.revisions.order_by("-number")
