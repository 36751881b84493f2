"""Create (or update) a user and make them a member of a tenant with a role."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Membership, Tenant
from accounts.services import membership_set, user_get_or_create


class Command(BaseCommand):
    help = "manage.py user_create EMAIL --password P --tenant SLUG --role owner|member|viewer"

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--password", required=True)
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--role", required=True, choices=Membership.Role.values)

    def handle(self, *args, email: str, password: str, tenant: str, role: str, **options):
        target = Tenant.objects.filter(slug=tenant).first()
        if target is None:
            raise CommandError(f"no tenant {tenant!r}")
        user = user_get_or_create(email=email, password=password)
        membership_set(tenant=target, user=user, role=role)
        self.stdout.write(f"{email} is {role} of {tenant}")
