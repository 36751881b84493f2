"""Delete what is past its tenant's retention now (the reconciler and the delivery process do it in
the background anyway): finished jobs with their attempts, log lines and connections, finished
webhook deliveries. It lives in the webhooks app because it is the one app that may see both
(ARCHITECTURE.md)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from jobs.services.retention import jobs_purge
from webhooks.services.retention import deliveries_purge


class Command(BaseCommand):
    help = (
        "Delete finished jobs, attempts, log lines and webhook deliveries older than each tenant's retention."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
        )
        parser.add_argument("--batch", type=int, default=500, help="jobs per transaction")

    def handle(self, *args, dry_run: bool = False, batch: int = 500, **options):
        purged = jobs_purge(batch=batch, max_batches=1_000_000, dry_run=dry_run)
        deliveries = deliveries_purge(batch=batch, max_batches=1_000_000, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        for slug, jobs in sorted(purged.by_tenant.items()):
            self.stdout.write(f"  {slug}: {jobs} jobs")
        self.stdout.write(
            f"{verb} {purged.jobs} jobs, {purged.attempts} attempts, {purged.log_lines} log lines, "
            f"{purged.connections} connections, {deliveries} webhook deliveries"
        )
