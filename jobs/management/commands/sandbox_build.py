"""Build the runtime images (reused when an image from the same inputs exists)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sandbox import SandboxError, images


class Command(BaseCommand):
    help = "Build the python and node sandbox images from Debian packages."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="rebuild even if the image exists")

    def handle(self, *args, force: bool = False, **options):
        try:
            tags = images.build_all(force=force, log=lambda msg: self.stdout.write(msg))
        except (SandboxError, Exception) as exc:  # docker, debootstrap or build failure
            raise CommandError(f"sandbox_build failed: {exc}") from exc
        for runtime, tag in tags.items():
            self.stdout.write(f"{runtime}\t{tag}")
