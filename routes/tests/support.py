"""Helpers of the routes tests: a function and its routes made through the services, secrets, one
public request over ASGI in process (as uvicorn would make it), and a stand-in worker that finishes
a route's jobs with what a given function of the request returns (the unit tier has no Docker)."""

from __future__ import annotations

import asyncio
import threading
import time

from django.db import close_old_connections
from django.utils import timezone

from functions.services.deploy import VersionSpec, function_create
from jobs import completion
from jobs.models import FINISHED, Job
from lambdasite.redis_client import get_redis
from routes.services import manage
from vault.services import Actor, secret_put

ECHO_PY = """\
import json

def main(request):
    return {"status": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(request)}
"""


def make_function(tenant, name: str = "echo", code: str = ECHO_PY, runtime: str = "python", **fields):
    function, _ = function_create(
        tenant=tenant, user=None, name=name, runtime=runtime, spec=VersionSpec(code=code, **fields)
    )
    return function


def set_secret(tenant, name: str, value: str) -> None:
    secret_put(tenant=tenant, name=name, value=value, actor=Actor("test", is_owner=True))


def make_route(function, path: str = "/hook", **fields):
    return manage.route_create(function=function, spec=manage.RouteSpec(path=path, **fields))


def fetch(
    method: str,
    path: str,
    *,
    headers=(),
    body: bytes = b"",
    query: str = "",
    host: str = "testserver",
    client: str = "203.0.113.9",
    app=None,
) -> dict:
    """One request through the ASGI application the server runs. -> {status, headers, body} with the
    headers as a list of (lower-case name, value)."""
    return asyncio.run(afetch(method, path, headers=headers, body=body, query=query, host=host,
                              client=client, app=app))  # fmt: skip


async def afetch(method, path, *, headers=(), body=b"", query="", host="testserver", client="203.0.113.9",
                 app=None) -> dict:  # fmt: skip
    if app is None:
        from lambdasite.asgi import http_application as app
    raw = [(b"host", host.encode())] if host else []
    raw += [(n.lower().encode(), v.encode("latin-1")) for n, v in headers]
    if body:
        raw.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": _decoded(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw,
        "client": (client, 40000),
        "server": ("testserver", 80),
    }
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)

    messages = []

    async def send(message):
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return {
        "status": start["status"],
        "headers": [(n.decode(), v.decode("latin-1")) for n, v in start["headers"]],
        "body": content,
    }


def _decoded(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def header(answer: dict, name: str) -> str | None:
    return next((v for n, v in answer["headers"] if n == name), None)


class Finisher:
    """A stand-in worker: a thread that finishes every waiting job of ``tenant`` with
    ``respond(request) -> (status, result, error)``, announcing it as a worker does."""

    def __init__(self, tenant, respond) -> None:
        self.tenant_id = tenant.pk
        self.respond = respond
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Finisher:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                for job in Job.objects.filter(tenant_id=self.tenant_id).exclude(status__in=FINISHED):
                    finish(job, *self.respond(job.args[0] if job.args else None))
                time.sleep(0.01)
        finally:
            close_old_connections()


def finish(job: Job, status: str, result=None, error=None) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        status=status, result=result, error=error, started_at=now, finished_at=now, attempts=1
    )
    pipe = get_redis().pipeline()
    completion.announce(pipe, job.pk)
    pipe.execute()
