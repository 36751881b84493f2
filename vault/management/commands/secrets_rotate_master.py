"""Re-wrap every tenant's data key under the current master key (SECRETS_KEY).

To rotate: generate a new key, start every process with ``SECRETS_KEY=<new>`` and
``SECRETS_KEY_OLD=<old>`` (both read, the new one writes), run this command, then drop
``SECRETS_KEY_OLD``. The old key may instead be given to this command alone with
``--old-key-file`` (one base64 key per line). Each tenant's key is re-wrapped in its own
transaction; keys already under the current master are left alone, so the command can be run
again after an interruption. Secrets themselves are not re-encrypted: they are under the data
keys, which do not change."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from lambdasite.env import master_key_value
from lambdasite.exceptions import ApplicationError
from vault import crypto
from vault.models import TenantKey
from vault.services import data_key_rewrap


class Command(BaseCommand):
    help = "Re-wrap every tenant's data key under SECRETS_KEY (old keys: SECRETS_KEY_OLD or --old-key-file)"

    def add_arguments(self, parser):
        parser.add_argument(
            "--old-key-file",
            action="append",
            default=[],
            metavar="PATH",
            help="a file of earlier master keys, one base64 key per line (repeatable)",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="change nothing; exit with an error while any data key is under another master key",
        )

    def handle(self, *args, old_key_file: list[str], check: bool, **options):
        keys = crypto.keyring()
        for path in old_key_file:
            for key in _read_keys(path):
                keys.setdefault(key.id, key)
        current = crypto.current_master()
        others = TenantKey.objects.exclude(master_key_id=current.id).order_by("tenant_id")
        pending = list(others.values_list("tenant_id", flat=True))
        total = TenantKey.objects.count()
        if check:
            if pending:
                raise CommandError(f"{len(pending)} of {total} data keys are not under the current master")
            self.stdout.write(f"all {total} data keys are under the current master {current.id}")
            return
        done, failed = 0, []
        for tenant_id in pending:
            try:
                done += data_key_rewrap(tenant_id=tenant_id, keys=keys)
            except ApplicationError:
                failed.append(tenant_id)
        self.stdout.write(
            f"re-wrapped {done} data keys under master key {current.id}; {total - len(pending)} already were"
        )
        if failed:
            raise CommandError(
                f"{len(failed)} data keys could not be read with the keys given (tenants "
                f"{', '.join(map(str, failed[:20]))}): pass their old master key in SECRETS_KEY_OLD or "
                "--old-key-file, and run the command again"
            )


def _read_keys(path: str) -> list[crypto.MasterKey]:
    try:
        lines = Path(path).read_text().split()
    except OSError as exc:
        raise CommandError(f"--old-key-file {path}: {exc}") from None
    try:
        return [crypto.MasterKey(master_key_value(f"--old-key-file {path}", line)) for line in lines]
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from None
