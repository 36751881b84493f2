"""Change a tenant's quota from a script; effective on the next request, no restart."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Tenant

FIELDS = {
    "max_concurrency": ("--max-concurrency", int),
    "submissions_per_minute": ("--per-minute", int),
    "monthly_gb_seconds": ("--gb-seconds", float),
    "max_timeout_ms": ("--max-timeout-ms", int),
    "max_memory_mb": ("--max-memory-mb", int),
    "default_max_retries": ("--default-max-retries", int),
}


class Command(BaseCommand):
    help = (
        "Set quota values: manage.py quota_set SLUG [--max-concurrency N] [--per-minute "
        "N] [--gb-seconds N] ..."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        for field, (flag, kind) in FIELDS.items():
            parser.add_argument(flag, dest=field, type=kind, default=None)
        parser.add_argument("--suspend", action="store_true")
        parser.add_argument("--resume", action="store_true")

    def handle(self, *args, slug: str, **options):
        tenant = Tenant.objects.select_related("quota").filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant {slug!r}")
        quota = tenant.quota
        changed = []
        for field in FIELDS:
            value = options.get(field)
            if value is not None:
                if value < 0:
                    raise CommandError(f"{FIELDS[field][0]} must not be negative")
                setattr(quota, field, value)
                changed.append(f"{field}={value}")
        quota.save()
        if options["suspend"] or options["resume"]:
            tenant.is_suspended = bool(options["suspend"])
            tenant.save(update_fields=["is_suspended"])
            changed.append(f"suspended={tenant.is_suspended}")
        self.stdout.write(f"{slug}: " + (", ".join(changed) or "unchanged"))
