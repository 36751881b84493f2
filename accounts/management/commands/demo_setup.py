"""Set up the demo: a `demo` tenant, an admin user, and a fresh API key (printed last)."""
from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.models import Membership, Tenant
from accounts.services import api_key_issue, membership_set, tenant_create


class Command(BaseCommand):
    help = "Create the demo tenant and admin user if missing, and issue a new demo API key."

    def handle(self, *args, **options):
        email = os.environ.get("DEMO_ADMIN_EMAIL", "admin@example.com")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
        User = get_user_model()
        user = User.objects.filter(username=email).first()
        if user is None:
            user = User.objects.create_superuser(username=email, email=email, password=password)
            self.stdout.write(f"created admin user {email} with password {password!r}")
        tenant = Tenant.objects.filter(slug="demo").first() or tenant_create(slug="demo", name="Demo")
        membership_set(tenant=tenant, user=user, role=Membership.Role.OWNER)
        issued = api_key_issue(tenant=tenant, name="make run", created_by=user)
        self.stdout.write("demo API key (shown once):")
        self.stdout.write(issued.plaintext)
