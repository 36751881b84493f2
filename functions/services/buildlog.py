"""A build's bookkeeping while it runs: its log (stored in batches, streamed to open pages) and its
lease (renewed from a thread, with the layer's while it installs one)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from lambdasite import live

from ..models import BuildLogLine, DependencyLayer, FunctionVersion

log = logging.getLogger("lambdasite.functions")


def build_group(version_id) -> str:
    return f"build.{version_id}"


class BuildLog:
    """A version's build log: stored line by line (in batches) and streamed to open pages."""

    FLUSH_S = 0.2

    def __init__(self, version: FunctionVersion) -> None:
        self.version_id = version.pk
        self.seq = version.build_log_lines
        self.pending: list[BuildLogLine] = []
        self.last_flush = time.monotonic()

    def __call__(self, text: str, stream: str = "build") -> None:
        self.seq += 1
        self.pending.append(
            BuildLogLine(
                version_id=self.version_id, seq=self.seq, stream=stream, ts=timezone.now(), text=text[:16384]
            )
        )
        if time.monotonic() - self.last_flush > self.FLUSH_S or len(self.pending) >= 200:
            self.flush()

    def system(self, text: str) -> None:
        self(f"[lambdasite] {text}", stream="system")

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        BuildLogLine.objects.bulk_create(lines)
        FunctionVersion.objects.filter(pk=self.version_id).update(build_log_lines=self.seq)
        live.publish(
            build_group(self.version_id),
            {
                "kind": "logs",  # the same shape as a job's log lines: the dashboard's log pane shows both
                "lines": [
                    {"seq": line.seq, "stream": line.stream, "ts": line.ts.isoformat(), "text": line.text}
                    for line in lines
                ],
            },
        )


class Lease(threading.Thread):
    """Renews a build's lease (and the layer's, while it installs one) until stopped."""

    def __init__(self, version_id, worker: str) -> None:
        super().__init__(name=f"build-lease-{version_id}", daemon=True)
        self.version_id, self.worker = version_id, worker
        self.layer_id = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.wait(settings.BUILD_LEASE_S / 4):
                until = timezone.now() + timedelta(seconds=settings.BUILD_LEASE_S)
                FunctionVersion.objects.filter(pk=self.version_id, builder=self.worker).update(
                    lease_expires_at=until
                )
                if self.layer_id is not None:
                    DependencyLayer.objects.filter(pk=self.layer_id, builder=self.worker).update(
                        lease_expires_at=until
                    )
        except Exception:  # noqa: BLE001 - the lease then expires and the build is run again
            log.exception("build lease renewal failed")
        finally:
            connection.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)
