"""Change a tenant's quota from a script; effective on the next request, no restart.

Every field of ``Quota`` is an option named after it (``max_log_lines`` is ``--max-log-lines``),
derived from the model, so a limit added later can be set without touching this command. Values
are parsed and validated by the model's own fields; a bad one is a clean error, nothing saved."""

from __future__ import annotations

import math

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import models

from accounts.models import Quota, Tenant

# shorter names the command had before it covered every field (kept: scripts use them)
ALIASES = {"submissions_per_minute": "--per-minute", "monthly_gb_seconds": "--gb-seconds"}


def quota_fields() -> list[models.Field]:
    """The limits an operator sets: every concrete, editable, non-relation field but the key."""
    return [
        field
        for field in Quota._meta.concrete_fields
        if field.editable and not field.primary_key and not field.is_relation
    ]


def flag(field: models.Field) -> str:
    return "--" + field.name.replace("_", "-")


class Command(BaseCommand):
    help = (
        "Set a tenant's quota: manage.py quota_set SLUG [--max-concurrency N] [--max-log-lines N] ... "
        "(--help lists every limit)"
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        for field in quota_fields():
            names = [flag(field)] + ([ALIASES[field.name]] if field.name in ALIASES else [])
            parser.add_argument(
                *names,
                dest=field.name,
                default=None,
                metavar=_metavar(field),
                help=f"{field.help_text or field.verbose_name} (default {field.get_default()}"
                f"{'; none: unlimited' if field.null else ''})".replace("%", "%%"),
            )
        suspension = parser.add_mutually_exclusive_group()
        suspension.add_argument("--suspend", action="store_true")
        suspension.add_argument("--resume", action="store_true")

    def handle(self, *args, slug: str, **options):
        tenant = Tenant.objects.select_related("quota").filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant {slug!r}")
        quota = tenant.quota
        changed = []
        for field in quota_fields():
            raw = options.get(field.name)
            if raw is not None:
                setattr(quota, field.name, _value(field, raw, quota))
                changed.append(field.name)
        try:
            quota.full_clean(exclude=["tenant"])  # the model's constraints, across fields
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        changed = [f"{name}={getattr(quota, name)}" for name in changed]  # as cleaned
        quota.save()
        if options["suspend"] or options["resume"]:
            tenant.is_suspended = bool(options["suspend"])
            tenant.save(update_fields=["is_suspended"])
            changed.append(f"suspended={tenant.is_suspended}")
        self.stdout.write(f"{slug}: " + (", ".join(changed) or "unchanged"))


def _metavar(field: models.Field) -> str:
    if isinstance(field, ArrayField):
        return "A,B"
    return "X" if isinstance(field, models.FloatField) else "N"


def _value(field: models.Field, raw: str, quota: Quota):
    """``raw`` parsed and validated by the field (its type, its range); limits are never negative. A
    limit that may be empty (``--max-egress-bytes-month``) is lifted by ``none`` or ``unlimited``."""
    if field.null and raw.strip().lower() in ("none", "unlimited"):
        return None
    if isinstance(field, ArrayField):  # a list, comma-separated (--allowed-pools default,eu)
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        value = field.clean(raw, quota)
    except ValidationError as exc:
        raise CommandError(f"{flag(field)}: {' '.join(exc.messages)}") from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise CommandError(f"{flag(field)}: must be a finite number")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise CommandError(f"{flag(field)}: must not be negative")
    return value
