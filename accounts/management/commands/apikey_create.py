"""Issue an API key for a tenant; the key is printed alone on the last line, once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Tenant
from accounts.services import api_key_issue
from lambdasite.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create an API key: manage.py apikey_create SLUG --name NAME [--scope read|write]"

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scope", default="write", choices=["read", "write"])

    def handle(self, *args, slug: str, name: str, scope: str, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant {slug!r}")
        try:
            issued = api_key_issue(tenant=tenant, name=name, scope=scope, operator=True)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"created {scope} key {issued.api_key.prefix} ({name}) for {slug}; it is shown once:"
        )
        self.stdout.write(issued.plaintext)
