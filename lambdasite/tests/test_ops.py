"""Operations endpoints: liveness, readiness per dependency, Prometheus metrics across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.test import APIClient

from jobs.services.reconcile import HEARTBEAT_KEY
from lambdasite.redis_client import build_queue_name

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def test_healthz(db):
    assert APIClient().get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_only_what_web_needs_and_survives_a_redis_flush(redis_conn):
    """No worker, no reconciler, and then Redis loses everything: web can still serve, so it is ready
    (it used to answer 503 "no live worker" forever after a FLUSHALL: every web pod unready)."""
    response = APIClient().get("/readyz")
    assert response.status_code == 200, response.json()
    assert set(response.json()["checks"]) == {"database", "redis"}
    redis_conn.flushdb()
    response = APIClient().get("/readyz")
    assert response.status_code == 200 and response.json()["status"] == "ok", response.json()


def test_readyz_is_unavailable_when_redis_does_not_answer(db, monkeypatch):
    import redis

    from jobs.tests.test_chaos import free_port
    from lambdasite import views

    # refused at once: redis-py's default retries with backoff would add ~4 s and check nothing more
    dead = redis.Redis(port=free_port(), socket_timeout=1, retry=None)
    monkeypatch.setattr(views, "get_redis", lambda: dead)
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False and response.json()["checks"]["database"]["ok"]


def test_the_fleet_health_counts_unexpired_heartbeats_per_role(db, redis_conn):
    from jobs import metrics

    response = APIClient().get("/healthz/fleet")
    assert response.status_code == 503 and response.json()["status"] == "degraded"
    checks = response.json()["checks"]
    assert checks["workers"] == {"ok": False, "error": "no live job worker", "ms": checks["workers"]["ms"]}
    assert not checks["build_workers"]["ok"] and not checks["reconciler"]["ok"]

    now = time.time()
    metrics.worker_beat(role="jobs", name="w1", ttl_s=15, now=now)
    metrics.worker_beat(role="jobs", name="w2", ttl_s=15, now=now - 16)  # its last beat expired
    metrics.worker_beat(role="builds", name="b1", ttl_s=15, now=now)
    metrics.reconciler_beat(1.0)
    response = APIClient().get("/healthz/fleet")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert checks["workers"]["detail"] == {"count": 1} and checks["build_workers"]["detail"] == {"count": 1}
    assert metrics.workers_alive(now=now + 16) == {"jobs": 0, "builds": 0}  # three missed beats later
    metrics.worker_gone(role="builds", name="b1")
    assert APIClient().get("/healthz/fleet").json()["checks"]["build_workers"]["ok"] is False


def test_the_fleet_health_is_for_this_machine_or_the_metrics_token(db, settings):
    settings.METRICS_TOKEN = ""
    remote = APIClient().get("/healthz/fleet", REMOTE_ADDR="203.0.113.9")
    assert remote.status_code == 403 and remote.json()["error"]["code"] == "forbidden"
    settings.METRICS_TOKEN = "s3cret"
    assert APIClient().get("/healthz/fleet").status_code == 401
    assert APIClient().get("/healthz/fleet", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 503


def test_a_stale_reconciler_makes_the_fleet_unhealthy(db, redis_conn, settings):
    from jobs import metrics

    metrics.worker_beat(role="jobs", name="w1", ttl_s=15)
    metrics.worker_beat(role="builds", name="b1", ttl_s=15)
    redis_conn.set(HEARTBEAT_KEY, str(time.time() - settings.READYZ_RECONCILER_MAX_AGE_S - 5))
    checks = APIClient().get("/healthz/fleet").json()["checks"]
    assert checks["reconciler"]["ok"] is False and checks["reconciler"]["error"].startswith("last heartbeat")
    redis_conn.set(HEARTBEAT_KEY, str(time.time()))
    assert APIClient().get("/healthz/fleet").status_code == 200


def scrape(client=None, **headers) -> str:
    response = (client or APIClient()).get("/metrics", **headers)
    assert response.status_code == 200
    return response.content.decode()


def value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in metrics")


@pytest.mark.docker
def test_metrics_count_the_job_path(alice, run_worker):
    alice.post_job({"runtime": "python", "code": "def main():\n    return 1\n"})
    alice.post_job({"runtime": "python", "code": "def main():\n    raise ValueError()\n"})
    run_worker()
    text = scrape()
    assert value(text, 'lambdasite_jobs_submitted_total{runtime="python"}') == 2
    assert value(text, 'lambdasite_jobs_finished_total{runtime="python",status="succeeded"}') == 1
    assert value(text, 'lambdasite_jobs_finished_total{runtime="python",status="failed"}') == 1
    assert value(text, "lambdasite_job_run_seconds_count") == 2
    assert value(text, "lambdasite_job_queue_wait_seconds_count") == 2
    assert value(text, "lambdasite_sandbox_start_seconds_count") == 2
    assert value(text, "lambdasite_jobs_running") == 0
    assert value(text, 'lambdasite_queue_depth{queue="jobs"}') == 0
    assert value(text, "lambdasite_dead_letters") == 0
    assert "lambdasite_warm_cells" in text and "lambdasite_spares" in text
    assert value(text, 'lambdasite_workers{role="jobs"}') == 0  # run_worker beats no heartbeat: not a process
    assert "django_http_requests_total_by_method_total" in text  # django-prometheus request metrics


@pytest.mark.system  # starts another Django process
def test_metrics_from_another_process_are_counted(db):
    db_url = "postgres://{USER}:{PASSWORD}@{HOST}:{PORT}/{NAME}".format(
        **{k: v or "" for k, v in connection.settings_dict.items() if isinstance(v, (str, int, type(None)))}
    )
    env = {**os.environ, "DATABASE_URL": db_url}
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from jobs import metrics; metrics.count_submitted('node', 3)",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    assert value(scrape(), 'lambdasite_jobs_submitted_total{runtime="node"}') == 3


def test_the_fleet_gauges_follow_the_heartbeats(db, redis_conn):
    from jobs import metrics

    text = scrape()
    assert value(text, 'lambdasite_workers{role="jobs"}') == 0
    assert value(text, 'lambdasite_workers{role="builds"}') == 0
    assert value(text, "lambdasite_reconciler_heartbeat_age_seconds") == float("inf")
    metrics.worker_beat(role="jobs", name="w1", ttl_s=15)
    metrics.worker_beat(role="jobs", name="w2", ttl_s=15)
    metrics.worker_beat(role="builds", name="b1", ttl_s=15)
    redis_conn.set(HEARTBEAT_KEY, str(time.time() - 3))
    text = scrape()
    assert value(text, 'lambdasite_workers{role="jobs"}') == 2
    assert value(text, 'lambdasite_workers{role="builds"}') == 1
    assert 2 <= value(text, "lambdasite_reconciler_heartbeat_age_seconds") < 10
    assert value(text, f'lambdasite_queue_depth{{queue="{build_queue_name()}"}}') == 0


def test_metrics_can_require_a_bearer_token(db, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert APIClient().get("/metrics").status_code == 401
    assert APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert "lambdasite_jobs_running" in scrape(HTTP_AUTHORIZATION="Bearer s3cret")


def test_every_process_logs_json_lines(db):
    """The web server's own lines use the same JSON formatter as Django, workers and the reconciler."""
    import json as jsonlib
    import logging.config

    config = jsonlib.loads((ROOT / "deploy" / "uvicorn-logging.json").read_text())
    logging.config.dictConfig(config)
    handler = logging.getLogger("uvicorn.error").handlers[0]
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Started server process", None, None
    )
    line = handler.formatter.format(record)
    assert jsonlib.loads(line)["msg"] == "Started server process"
    from lambdasite.logs import JsonFormatter

    job_record = logging.LogRecord("lambdasite.jobs", logging.INFO, __file__, 1, "job finished", None, None)
    job_record.job_id, job_record.attempt, job_record.tenant = "abc", 2, "acme"
    entry = jsonlib.loads(JsonFormatter().format(job_record))
    assert (entry["job_id"], entry["attempt"], entry["tenant"]) == ("abc", 2, "acme")
