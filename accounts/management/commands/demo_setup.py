"""Set up the demo: a `demo` tenant, an admin user, and a fresh API key (printed last)."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Membership, Tenant
from accounts.services import api_key_issue, membership_set, tenant_create

DEMO_PASSWORD = "admin"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _refuse_weak_beyond_loopback(host: str, weak: bool) -> None:
    """The demo's admin/admin is for a laptop: anything reachable from another machine refuses it."""
    if weak and host not in LOOPBACK and not host.startswith("127."):
        raise CommandError(
            f"refusing to serve on {host} with the demo admin password 'admin': set DEMO_ADMIN_PASSWORD "
            "(and change the existing admin's password with `manage.py changepassword`), or bind to 127.0.0.1"
        )


class Command(BaseCommand):
    help = "Create the demo tenant and admin user if missing, and issue a new demo API key."

    def handle(self, *args, **options):
        email = os.environ.get("DEMO_ADMIN_EMAIL", "admin@example.com")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
        host = os.environ.get("HOST", "127.0.0.1")
        User = get_user_model()
        user = User.objects.filter(username=email).first()
        if user is None:
            _refuse_weak_beyond_loopback(host, password == DEMO_PASSWORD)
            user = User.objects.create_superuser(username=email, email=email, password=password)
            self.stdout.write(f"created admin user {email} with password {password!r}")
        else:
            _refuse_weak_beyond_loopback(host, user.check_password(DEMO_PASSWORD))
        tenant = Tenant.objects.filter(slug="demo").first() or tenant_create(slug="demo", name="Demo")
        membership_set(tenant=tenant, user=user, role=Membership.Role.OWNER)
        issued = api_key_issue(tenant=tenant, name="make run", created_by=user)
        self.stdout.write("demo API key (shown once):")
        self.stdout.write(issued.plaintext)
