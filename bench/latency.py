"""Submit-to-result latency of main(2, 3) against a running stack (make run), sequential, one client.

    LAMBDASITE_KEY=lsk_... .venv/bin/python bench/latency.py [--n 200] [--runtime python]

Each sample is the time from sending POST /api/v1/jobs to the first GET that
shows the job finished (polled every 2 ms). Prints p50/p95/p99 and failures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.request

CODE = {
    "python": "def main(a, b):\n    return a + b\n",
    "node": "function main(a, b) { return a + b; }",
}


def call(url: str, key: str, data: dict | None = None) -> dict:
    req = urllib.request.Request(url, method="POST" if data is not None else "GET")
    req.add_header("Authorization", f"Bearer {key}")
    body = None
    if data is not None:
        req.add_header("Content-Type", "application/json")
        body = json.dumps(data).encode()
    with urllib.request.urlopen(req, body, timeout=30) as resp:
        return json.loads(resp.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("LAMBDASITE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("LAMBDASITE_KEY"))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--runtime", default="python", choices=sorted(CODE))
    args = parser.parse_args()
    if not args.key:
        raise SystemExit("set LAMBDASITE_KEY (make run prints one)")
    samples, failures = [], 0
    for _ in range(args.n):
        t0 = time.perf_counter()
        job = call(
            f"{args.url}/api/v1/jobs",
            args.key,
            {"runtime": args.runtime, "code": CODE[args.runtime], "args": [2, 3]},
        )
        while job["status"] not in ("succeeded", "failed", "timed_out", "killed", "cancelled", "dead"):
            time.sleep(0.002)
            job = call(f"{args.url}/api/v1/jobs/{job['id']}", args.key)
        samples.append((time.perf_counter() - t0) * 1000)
        if job["status"] != "succeeded" or job["result"] != 5:
            failures += 1
    samples.sort()
    q = statistics.quantiles(samples, n=100)
    print(f"runtime={args.runtime} n={args.n} failures={failures}")
    print(
        f"submit-to-result ms: p50={statistics.median(samples):.1f} p95={q[94]:.1f} "
        f"p99={q[98]:.1f} min={samples[0]:.1f} max={samples[-1]:.1f}"
    )


if __name__ == "__main__":
    main()
