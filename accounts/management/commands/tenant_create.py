"""Create a tenant (with its default quota) and optionally its owner."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.services import tenant_create
from lambdasite.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create a tenant: manage.py tenant_create SLUG [--name NAME] [--owner EMAIL]"

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--owner", default=None, help="email of the owner (created if missing)")
        parser.add_argument("--if-missing", action="store_true", help="succeed quietly if the tenant exists")

    def handle(self, *args, slug: str, name: str, owner: str | None, if_missing: bool, **options):
        from accounts.models import Tenant

        if if_missing and Tenant.objects.filter(slug=slug).exists():
            self.stdout.write(f"tenant {slug} exists")
            return
        try:
            tenant = tenant_create(slug=slug, name=name, owner_email=owner)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"created tenant {tenant.slug}")
