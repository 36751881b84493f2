"""Deployment files: compose.yaml validates and keeps its trust boundaries; the Dockerfile's shape."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose(env: dict, *args: str) -> subprocess.CompletedProcess:
    """``docker compose -f compose.yaml ARGS`` (or ``docker-compose``) with ``env``."""
    command = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
    return subprocess.run(
        [*command, "-f", str(ROOT / "compose.yaml"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def compose_config() -> dict:
    env = {
        **os.environ,
        "SECRET_KEY": "test-only",
        "SECRETS_KEY": "dGVzdC1vbmx5LXRlc3Qtb25seS10ZXN0LW9ubHktMDE=",
        "REDIS_PASSWORD": "test-only",
        "METRICS_TOKEN": "test-only",
    }
    done = compose(env, "config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.mark.system  # the compose CLI, installed by `make test`
def test_compose_config_is_valid_and_keeps_the_trust_boundaries():
    config = compose_config()
    services = config["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "scheduler", "webhooks", "prometheus"} <= set(
        services
    )
    socket = "/var/run/docker.sock"
    mounts = {name: str(svc.get("volumes", [])) for name, svc in services.items()}
    assert sorted(name for name, mount in mounts.items() if socket in mount) == [
        "build-worker",
        "worker",
        "worker-eu",
    ]
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["worker"]["stop_grace_period"] in ("120s", "2m", "2m0s")
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert "READYZ_CHECK_DOCKER" not in services["web"]["environment"]  # web's readiness: PostgreSQL, Redis
    assert services["worker"]["command"][-1].endswith("manage.py worker")
    assert services["build-worker"]["command"][-1].endswith("manage.py worker --builds")
    # a second pool: the same worker serving "eu" only, started only with its profile
    eu = services["worker-eu"]
    assert eu["profiles"] == ["eu"] and eu["command"][-1].endswith("manage.py worker --pools eu")
    assert eu["volumes"] == services["worker"]["volumes"] and eu["stop_grace_period"] == "120s"
    assert (
        services["worker"]["environment"]["WORKER_POOLS"] == "default"
        and "profiles" not in services["worker"]
    )
    prometheus_mounts = " ".join(str(v) for v in services["prometheus"]["volumes"])
    assert "prometheus-rules.yml" in prometheus_mounts
    # builders have network none: the build worker's proxy sockets live in a named volume they mount
    builder = services["build-worker"]
    assert builder["environment"]["BUILD_PROXY_DIR"] == "/build-proxy"
    assert builder["environment"]["BUILD_PROXY_VOLUME"] == config["volumes"]["build-proxy"]["name"]
    assert "build-proxy:/build-proxy:rw" in builder["volumes"]


@pytest.mark.system
def test_compose_refuses_to_start_without_a_secrets_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRETS_KEY"} | {
        "SECRET_KEY": "x",
        "REDIS_PASSWORD": "x",
        "METRICS_TOKEN": "x",
    }
    done = compose(env, "config")
    assert done.returncode != 0 and "SECRETS_KEY" in (done.stderr + done.stdout)


@pytest.mark.system
def test_compose_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"} | {
        "REDIS_PASSWORD": "x",
        "METRICS_TOKEN": "x",
    }
    done = compose(env, "config")
    assert done.returncode != 0 and "SECRET_KEY" in (done.stderr + done.stdout)


def test_the_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    assert "\nUSER lambdasite" in text and "HEALTHCHECK" in text and "/healthz" in text


def _exported_metrics() -> set[str]:
    """Every sample name /metrics can show (Lambdasite's collector, read from real PostgreSQL and Redis)."""
    from jobs.metrics import LambdasiteCollector

    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "summary": ("",),  # the pools' recent waits: quantiles only (jobs.metrics._placement_gauges)
    }
    return {
        family.name + suffix for family in LambdasiteCollector().collect() for suffix in suffixes[family.type]
    }


def test_the_grafana_dashboard_only_uses_metrics_we_export(db):
    import json
    import re

    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    names = {
        m
        for panel in dashboard["panels"]
        for t in panel["targets"]
        for m in re.findall(r"lambdasite_[a-z_]+", t["expr"])
    }
    exported = _exported_metrics()
    assert names and names <= exported, names - exported


def test_the_alert_rules_parse_and_name_only_metrics_we_export(db):
    """deploy/prometheus-rules.yml: loaded by prometheus.yml, each rule complete, each expression
    balanced and naming only metrics /metrics exports (and Prometheus's own ``up``)."""
    import re

    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["prometheus-rules.yml"]
    rules = yaml.safe_load((ROOT / "deploy" / config["rule_files"][0]).read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {
        "LambdasiteNoJobWorker",
        "LambdasiteNoBuildWorker",
        "LambdasiteReconcilerStale",
        "LambdasitePoolWithoutWorker",
    } <= {rule["alert"] for rule in alerts}
    exported = _exported_metrics() | {"up"}
    for rule in alerts:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
        assert rule["labels"]["severity"] in ("critical", "warning"), rule
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
        selectors = set(re.findall(r"\b(lambdasite_[a-z_]+|up)\b(?=\s*[{)<>=!]|\s*$)", expr))
        assert selectors and selectors <= exported, (rule["alert"], selectors - exported)
        for label, _ in re.findall(r'(\w+)=~?"([^"]*)"', expr):
            assert label in ("role", "queue", "job", "state", "quantile"), (rule["alert"], label)
