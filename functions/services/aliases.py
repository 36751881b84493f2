"""Aliases: a stable name (``prod``) for a version, moved by a PUT; optionally a canary that sends a
share of calls to a second version."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.guards import tenant_require_active
from lambdasite.exceptions import ValidationFailed

from .. import validation
from ..exceptions import AliasNotFound, VersionFailed, VersionNotFound
from ..models import Alias, BuildStatus, Function, FunctionVersion
from .invoke import functions_changed


def _version(function: Function, number, field: str) -> FunctionVersion:
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValidationFailed(
            f"{field}: must be a version number", details={"fields": {field: ["a number"]}}
        )
    version = function.versions.filter(number=number).first()
    if version is None:
        raise VersionNotFound(f"{function.name} has no version {number}", details={"field": field})
    if version.status == BuildStatus.FAILED:
        raise VersionFailed(f"version {number} of {function.name} failed to build; an alias cannot name it")
    return version


def alias_set(
    *,
    function: Function,
    name: str,
    version: int,
    additional_version: int | None = None,
    weight: float | None = None,
    description: str | None = None,
) -> tuple[Alias, bool]:
    """Create or move an alias. ``weight`` is the share (0 to 1) of calls that go to
    ``additional_version``. -> (alias, created)"""
    tenant_require_active(function.tenant)
    validation.alias_name(name)
    main = _version(function, version, "version")
    extra = None
    if additional_version is not None:
        extra = _version(function, additional_version, "additional_version")
        if extra.pk == main.pk:
            raise ValidationFailed(
                "additional_version: must differ from version",
                details={"fields": {"additional_version": ["same as version"]}},
            )
    if weight is not None and (
        isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1
    ):
        raise ValidationFailed(
            "weight: must be a number from 0 to 1", details={"fields": {"weight": ["0 to 1"]}}
        )
    if extra is None and weight:
        raise ValidationFailed(
            "weight: needs additional_version (the version that gets this share of calls)",
            details={"fields": {"weight": ["needs additional_version"]}},
        )
    fields = {
        "version": main,
        "additional_version": extra,
        "additional_weight": float(weight or 0.0) if extra is not None else 0.0,
    }
    if description is not None:
        fields["description"] = description[:200]
    for _ in range(2):
        try:
            with transaction.atomic():
                alias, created = Alias.objects.update_or_create(function=function, name=name, defaults=fields)
                functions_changed(function.tenant_id, function.name)
            return alias, created
        except IntegrityError:  # created concurrently: the second try updates it
            continue
    raise ValidationFailed("the alias changed concurrently; retry")


def alias_delete(*, function: Function, name: str) -> None:
    deleted, _ = Alias.objects.filter(function=function, name=name).delete()
    functions_changed(function.tenant_id, function.name)
    if not deleted:
        raise AliasNotFound(f"{function.name} has no alias {name!r}")
