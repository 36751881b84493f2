"""Lambdasite API client (standard library only); the command line is lambdasite_cli.

    from lambdasite_client import Client   # LAMBDASITE_URL and LAMBDASITE_KEY from the environment
    job = Client().submit(runtime="python", code=open("handler.py").read(), args=[2, 3], wait=30)

The `lambdasite` command (its usage is in lambdasite_cli's docstring) comes with
`pip install ./client`, or put bin/ on PATH.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

FINISHED = {"succeeded", "failed", "timed_out", "killed", "cancelled", "dead"}
RUNTIME_BY_SUFFIX = {".py": "python", ".js": "node", ".mjs": "node", ".cjs": "node"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class Client:
    def __init__(self, url: str | None = None, key: str | None = None, timeout: float = 60.0) -> None:
        self.url = (url or os.environ.get("LAMBDASITE_URL") or "http://127.0.0.1:8000").rstrip("/")
        self.key = key or os.environ.get("LAMBDASITE_KEY")
        if not self.key:
            raise ApiError(0, "no_key", "set LAMBDASITE_KEY (or pass key=)")
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: Any = None, query: dict | None = None, headers: dict | None = None
    ) -> Any:
        url = f"{self.url}/api/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(exc.code, "http_error", str(exc)) from None
            raise ApiError(
                exc.code, error.get("code", ""), error.get("message", ""), error.get("details")
            ) from None

    def submit(
        self,
        *,
        runtime: str,
        code: str,
        args: list | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
        **limits,
    ) -> dict:
        body = {
            "runtime": runtime,
            "code": code,
            "args": args or [],
            **{k: v for k, v in limits.items() if v is not None},
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request("POST", "/jobs", body, query={"wait": wait} if wait else None, headers=headers)

    def job(self, job_id: str) -> dict:
        return self.request("GET", f"/jobs/{job_id}")

    def steps(self, job_id: str, after: int = 0) -> dict:
        """A durable run's recorded steps after position ``after``."""
        return self.request("GET", f"/jobs/{job_id}/steps", query={"after": after})

    def send_event(self, event: str, key: str = "", data=None) -> dict:
        """Resume this tenant's durable runs waiting for ``event`` with ``key``; -> how many it resumed."""
        return self.request("POST", "/events", {"event": event, "key": key, "data": data})

    def jobs(self, *, status: str | None = None, limit: int = 20) -> dict:
        return self.request("GET", "/jobs", query={"status": status, "limit": limit})

    def logs(self, job_id: str, after: int = 0) -> dict:
        return self.request("GET", f"/jobs/{job_id}/logs", query={"after": after})

    def cancel(self, job_id: str) -> dict:
        return self.request("POST", f"/jobs/{job_id}/cancel")

    def retry(self, job_id: str) -> dict:
        return self.request("POST", f"/jobs/{job_id}/retry")

    def wait(self, job_id: str, timeout: float = 300.0, poll: float = 0.2) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in FINISHED or time.monotonic() > deadline:
                return job
            time.sleep(poll)

    def follow(self, job_id: str, poll: float = 0.3):
        """Yield log lines as they are stored, until the job is finished and every line was read."""
        after = 0
        while True:
            page = self.logs(job_id, after)
            yield from page["lines"]
            after = page["next_after"]
            if page["complete"]:
                return
            if not page["lines"]:
                time.sleep(poll)

    # -- deployed functions -------------------------------------------------------

    def functions(self) -> list:
        return self.request("GET", "/functions")

    def function(self, name: str) -> dict | None:
        try:
            return self.request("GET", f"/functions/{_q(name)}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def deploy(self, *, name: str, runtime: str, code: str, flow: dict | None = None, **fields) -> dict:
        """Deploy ``name``: its version 1, or its next version if it exists. -> the new version.
        ``egress`` ("none", "public" or ["host:port", ...]), ``env`` ({NAME: value}) and ``secrets``
        ({ENV_NAME: secret name}) left out are the previous version's. ``flow``: the function's
        max_concurrency, reserved_concurrency, concurrency_key, concurrency_per_key (None clears one;
        left out: unchanged), set with the new function or by a PATCH before the new version."""
        fields = {k: v for k, v in fields.items() if v is not None}
        if self.function(name) is None:
            created = self.request(
                "POST",
                "/functions",
                {"name": name, "runtime": runtime, "code": code, **fields, **(flow or {})},
            )
            return created["version"]
        if flow:
            self.function_update(name, **flow)
        return self.request("POST", f"/functions/{_q(name)}/versions", {"code": code, **fields})

    def function_update(self, name: str, **fields) -> dict:
        """PATCH a function's settings (provisioned, description, flow control); None clears one."""
        return self.request("PATCH", f"/functions/{_q(name)}", fields)

    def version(self, name: str, number: int) -> dict:
        return self.request("GET", f"/functions/{_q(name)}/versions/{number}")

    def versions(self, name: str) -> list:
        return self.request("GET", f"/functions/{_q(name)}/versions")

    def build_logs(self, name: str, number: int, after: int = 0) -> dict:
        return self.request(
            "GET", f"/functions/{_q(name)}/versions/{number}/build-logs", query={"after": after}
        )

    def invoke(
        self,
        name: str,
        args: list | None = None,
        *,
        qualifier: str | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
        **limits,
    ) -> dict:
        body = {"args": args or [], **{k: v for k, v in limits.items() if v is not None}}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        query = {"qualifier": qualifier, "wait": wait}
        return self.request("POST", f"/functions/{_q(name)}/invoke", body, query=query, headers=headers)

    def alias(self, name: str, alias: str, version: int, *, canary: int | None = None, weight=None) -> dict:
        body = {"version": version}
        if canary is not None:
            body.update(additional_version=canary, weight=weight if weight is not None else 0.1)
        return self.request("PUT", f"/functions/{_q(name)}/aliases/{_q(alias)}", body)

    def follow_build(self, name: str, number: int, poll: float = 0.5, timeout: float = 900.0):
        """Yield build log lines until the version is built (or failed); then the version."""
        after, deadline = 0, time.monotonic() + timeout
        while True:
            page = self.build_logs(name, number, after)
            yield from page["lines"]
            after = page["next_after"]
            if page["complete"] or time.monotonic() > deadline:
                return
            if not page["lines"]:
                time.sleep(poll)

    # -- schedules and webhooks ---------------------------------------------------

    def schedule_create(self, name: str, *, cron: str, function: str, **fields) -> dict:
        body = {
            "name": name,
            "cron": cron,
            "function": function,
            **{k: v for k, v in fields.items() if v is not None},
        }
        return self.request("POST", "/schedules", body)

    def schedules(self) -> list:
        return self.request("GET", "/schedules")

    def webhook_create(self, url: str, events: list, function: str | None = None) -> dict:
        body = {"url": url, "events": events, **({"function": function} if function else {})}
        return self.request("POST", "/webhooks", body)

    def webhooks(self) -> list:
        return self.request("GET", "/webhooks")

    # -- secrets ------------------------------------------------------------------

    def secret_set(self, name: str, value: str) -> dict:
        """Create a secret, or rotate it to a new revision (owners only). -> its metadata (no value)."""
        return self.request("PUT", f"/secrets/{_q(name)}", {"value": value})

    def secret(self, name: str) -> dict:
        return self.request("GET", f"/secrets/{_q(name)}")

    def secrets(self) -> list:
        """Every secret's metadata (name, revision, fingerprint, who and when), following the pages."""
        found, cursor = [], None
        while True:
            page = self.request("GET", "/secrets", query={"limit": 200, "cursor": cursor})
            found.extend(page["results"])
            if not page.get("next"):
                return found
            cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(page["next"]).query)["cursor"][0]

    def secret_delete(self, name: str) -> None:
        self.request("DELETE", f"/secrets/{_q(name)}")

    # -- routes -------------------------------------------------------------------

    def route_create(self, function: str, path: str, **fields) -> dict:
        """Serve ``function`` at /fn/<tenant><path>. Fields: methods, qualifier, mode, auth ({"type":
        "hmac", "preset": "github", "secret": "NAME"}, ...), delivery_header, cors, max_body_bytes,
        rate_limit_per_minute, expose_errors, description. -> the route, with its ``url``."""
        body = {"path": path, **{k: v for k, v in fields.items() if v is not None}}
        return self.request("POST", f"/functions/{_q(function)}/routes", body)

    def routes(self, function: str) -> list:
        return self.request("GET", f"/functions/{_q(function)}/routes")

    def route_update(self, function: str, route_id: str, **fields) -> dict:
        return self.request("PATCH", f"/functions/{_q(function)}/routes/{_q(route_id)}", fields)

    def route_delete(self, function: str, route_id: str) -> None:
        self.request("DELETE", f"/functions/{_q(function)}/routes/{_q(route_id)}")

    def replay(self, job_id: str, qualifier: str | None = None, wait: float | None = None) -> dict:
        """Run a route's job's stored request again, as ``qualifier`` (default: the route's)."""
        body = {"qualifier": qualifier} if qualifier else {}
        return self.request("POST", f"/jobs/{_q(job_id)}/replay", body, query={"wait": wait})


def _q(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


HANDLER_FILES = ("handler.py", "main.py", "index.js", "handler.js", "main.js")


def read_function_dir(path: str, runtime: str | None = None) -> dict:
    """What ``lambdasite deploy`` sends: the handler file's code, its runtime, and the dependencies
    beside it (requirements.txt for Python, package.json's dependencies for Node)."""
    if os.path.isdir(path):
        found = [name for name in HANDLER_FILES if os.path.isfile(os.path.join(path, name))]
        if not found:
            raise ValueError(f"{path}: no {', '.join(HANDLER_FILES)} in it; name the file instead")
        folder, file = path, os.path.join(path, found[0])
    else:
        folder, file = os.path.dirname(os.path.abspath(path)), path
    runtime = runtime or RUNTIME_BY_SUFFIX.get(os.path.splitext(file)[1])
    if runtime is None:
        raise ValueError(f"cannot tell the runtime of {file}; pass --runtime")
    with open(file, encoding="utf-8") as fh:
        out = {"runtime": runtime, "code": fh.read(), "file": file}
    requirements, package = os.path.join(folder, "requirements.txt"), os.path.join(folder, "package.json")
    if runtime == "python" and os.path.isfile(requirements):
        with open(requirements, encoding="utf-8") as fh:
            out["requirements"] = fh.read()
    if runtime == "node" and os.path.isfile(package):
        with open(package, encoding="utf-8") as fh:
            out["dependencies"] = json.load(fh).get("dependencies") or {}
    return out
