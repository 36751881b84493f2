"""Deployment files: compose.yaml validates and keeps its trust boundaries; the Dockerfile's shape."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose_config() -> dict:
    command = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
    env = {
        **os.environ,
        "SECRET_KEY": "test-only",
        "REDIS_PASSWORD": "test-only",
        "METRICS_TOKEN": "test-only",
    }
    done = subprocess.run(
        [*command, "-f", str(ROOT / "compose.yaml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_config_is_valid_and_keeps_the_trust_boundaries():
    config = compose_config()
    services = config["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "scheduler", "webhooks", "prometheus"} <= set(
        services
    )
    socket = "/var/run/docker.sock"
    mounts = {name: str(svc.get("volumes", [])) for name, svc in services.items()}
    assert [name for name, mount in mounts.items() if socket in mount] == ["worker"]
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["worker"]["stop_grace_period"] in ("120s", "2m", "2m0s")
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["web"]["environment"]["READYZ_CHECK_DOCKER"] == "0"


def test_compose_refuses_to_start_without_a_secret_key():
    command = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"} | {
        "REDIS_PASSWORD": "x",
        "METRICS_TOKEN": "x",
    }
    done = subprocess.run(
        [*command, "-f", str(ROOT / "compose.yaml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "SECRET_KEY" in (done.stderr + done.stdout)


def test_the_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    assert "\nUSER lambdasite" in text and "HEALTHCHECK" in text and "/healthz" in text


def test_the_grafana_dashboard_only_uses_metrics_we_export():
    import json
    import re

    from jobs import metrics

    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    names = {
        m
        for panel in dashboard["panels"]
        for t in panel["targets"]
        for m in re.findall(r"lambdasite_[a-z_]+", t["expr"])
    }
    exported = {
        "lambdasite_jobs_submitted_total",
        "lambdasite_jobs_finished_total",
        "lambdasite_jobs_running",
        "lambdasite_queue_depth",
        "lambdasite_dead_letters",
        "lambdasite_workers",
        "lambdasite_warm_cells",
        "lambdasite_spares",
    }
    exported |= {f"lambdasite_{name}_bucket" for name in metrics.BUCKETS}
    assert names and names <= exported, names - exported
