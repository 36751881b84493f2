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
from lambdasite.redis_client import get_queue

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def test_healthz(db):
    assert APIClient().get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_each_dependency_and_fails_without_workers(docker_client):
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] and checks["redis"]["ok"] and checks["docker"]["ok"]
    assert not checks["workers"]["ok"] and not checks["reconciler"]["ok"]


def test_readyz_is_ready_with_a_worker_and_a_fresh_reconciler(docker_client, redis_conn):
    from rq import Worker

    worker = Worker([get_queue()], connection=redis_conn)
    worker.register_birth()
    redis_conn.set(HEARTBEAT_KEY, str(time.time()))
    try:
        response = APIClient().get("/readyz")
        assert response.status_code == 200, response.json()
        assert response.json()["checks"]["workers"]["detail"]["count"] == 1
    finally:
        worker.register_death()


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
    assert "lambdasite_workers" in text and "lambdasite_warm_cells" in text and "lambdasite_spares" in text
    assert "django_http_requests_total_by_method_total" in text  # django-prometheus request metrics


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
