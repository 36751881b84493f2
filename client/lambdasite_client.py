"""Lambdasite API client and the `lambdasite` command line (standard library only).

export LAMBDASITE_URL=http://127.0.0.1:8000 LAMBDASITE_KEY=lsk_...
lambdasite run handler.py --args '[2, 3]' --wait
lambdasite logs JOB_ID --follow
lambdasite jobs [--status failed,dead]
lambdasite get JOB_ID | cancel JOB_ID | retry JOB_ID
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def _print_job(job: dict) -> None:
    print(json.dumps(job, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambdasite", description="Run functions on a Lambdasite server.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="submit a file's handler")
    run.add_argument("file")
    run.add_argument("--args", default="[]", help="JSON array of arguments")
    run.add_argument("--runtime", choices=["python", "node"], help="default: from the file's extension")
    run.add_argument("--handler", default=None)
    run.add_argument("--timeout-ms", type=int)
    run.add_argument("--memory-mb", type=int)
    run.add_argument("--max-retries", type=int)
    run.add_argument("--wait", action="store_true", help="wait for the result and print it")
    logs = sub.add_parser("logs", help="print a job's output")
    logs.add_argument("job")
    logs.add_argument("--follow", "-f", action="store_true")
    jobs = sub.add_parser("jobs", help="list recent jobs")
    jobs.add_argument("--status")
    jobs.add_argument("--limit", type=int, default=20)
    for name in ("get", "cancel", "retry"):
        sub.add_parser(name).add_argument("job")
    opts = parser.parse_args(argv)
    try:
        client = Client()
        if opts.command == "run":
            runtime = opts.runtime or RUNTIME_BY_SUFFIX.get(os.path.splitext(opts.file)[1])
            if runtime is None:
                parser.error("cannot tell the runtime from the file name; pass --runtime")
            with open(opts.file, encoding="utf-8") as fh:
                code = fh.read()
            job = client.submit(
                runtime=runtime,
                code=code,
                args=json.loads(opts.args),
                handler=opts.handler,
                timeout_ms=opts.timeout_ms,
                memory_mb=opts.memory_mb,
                max_retries=opts.max_retries,
                wait=30 if opts.wait else None,
            )
            if opts.wait and job["status"] not in FINISHED:
                job = client.wait(job["id"])
            if not opts.wait:
                print(job["id"])
                return 0
            for line in client.follow(job["id"]):
                print(line["text"], file=sys.stderr if line["stream"] == "stderr" else sys.stdout)
            if job["status"] == "succeeded":
                print(json.dumps(job["result"]))
                return 0
            print(f"{job['status']}: {json.dumps(job.get('error'))}", file=sys.stderr)
            return 1
        if opts.command == "logs":
            source = client.follow(opts.job) if opts.follow else client.logs(opts.job)["lines"]
            for line in source:
                print(line["text"], file=sys.stderr if line["stream"] == "stderr" else sys.stdout, flush=True)
            return 0
        if opts.command == "jobs":
            for job in client.jobs(status=opts.status, limit=opts.limit)["results"]:
                print(
                    f"{job['id']}  {job['status']:<10} {job['runtime']:<6} {job['created_at']}  "
                    f"{job['duration_ms'] or '':>10}"
                )
            return 0
        _print_job(
            {"get": client.job, "cancel": client.cancel, "retry": client.retry}[opts.command](opts.job)
        )
        return 0
    except ApiError as exc:
        print(f"lambdasite: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
