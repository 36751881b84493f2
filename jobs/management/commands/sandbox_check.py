"""Report on the sandbox: engine, runtime images, cells by owning worker, orphans."""

from __future__ import annotations

import json
from collections import defaultdict

import docker
from django.core.management.base import BaseCommand, CommandError

from sandbox.cell import LABEL
from sandbox.images import IMAGES, image_exists, image_tag
from sandbox.sweep import _proc_start, sweep_orphans


class Command(BaseCommand):
    help = "Check the Docker engine, the runtime images and the sandbox containers; --sweep removes orphans."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--sweep", action="store_true", help="remove containers whose worker is gone")

    def handle(self, *args, sweep: bool = False, **options):
        try:
            client = docker.from_env(timeout=10)
            version = client.version()
        except Exception as exc:  # noqa: BLE001 - any failure means the engine is unusable
            raise CommandError(f"Docker engine unreachable: {exc}") from exc
        report = {
            "engine": {"version": version.get("Version"), "api": version.get("ApiVersion"), "ok": True},
            "images": {name: self._image(client, name) for name in IMAGES},
            "cells": self._cells(client),
        }
        if sweep:
            report["swept"] = sweep_orphans(client)
        ok = all(img["present"] for img in report["images"].values())
        if options.get("json"):
            self.stdout.write(_dumps(report))
        else:
            self._print(report)
        if not ok:
            raise CommandError("a runtime image is missing: run `python manage.py sandbox_build`")

    @staticmethod
    def _image(client, name):
        return {"tag": image_tag(name), "present": image_exists(client, image_tag(name))}

    def _cells(self, client) -> dict:
        owners: dict = defaultdict(lambda: {"running": 0, "other": 0, "alive": False})
        for container in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
            labels = container.labels
            key = f"{labels.get('lambdasite.host')}:{labels.get('lambdasite.pid')}"
            entry = owners[key]
            entry["running" if container.status == "running" else "other"] += 1
            pid = int(labels.get("lambdasite.pid", "0") or 0)
            entry["alive"] = pid > 0 and _proc_start(pid) == labels.get("lambdasite.boot")
        orphans = sum(e["running"] + e["other"] for e in owners.values() if not e["alive"])
        return {
            "by_owner": dict(owners),
            "total": sum(e["running"] + e["other"] for e in owners.values()),
            "orphans": orphans,
        }

    def _print(self, report: dict) -> None:
        engine = report["engine"]
        self.stdout.write(f"engine   Docker {engine['version']} (API {engine['api']}): ok")
        for runtime, image in report["images"].items():
            state = "present" if image["present"] else "MISSING"
            self.stdout.write(f"image    {runtime:<7} {image['tag']}: {state}")
        cells = report["cells"]
        self.stdout.write(f"cells    {cells['total']} containers, {cells['orphans']} orphaned")
        for owner, entry in sorted(cells["by_owner"].items()):
            status = "live worker" if entry["alive"] else "worker gone"
            self.stdout.write(
                f"         {owner:<28} {entry['running']} running, {entry['other']} other ({status})"
            )
        if "swept" in report:
            self.stdout.write(f"swept    {len(report['swept'])} orphaned containers removed")


def _dumps(value) -> str:
    return json.dumps(value, indent=2)
