"""Sandbox benchmark: warm cells vs spares vs a naive `docker run --rm` per job. Run by hand:

    .venv/bin/python bench/sandbox.py [--seconds 10] [--clients 2]

Prints, for trivial jobs (return 2 + 3): warm-cell latency p50/p95/p99 and throughput
for Python and Node with C concurrent clients; the first job of a new tenant with a
spare available and with none; the same workload through `docker run --rm` with the
seed prototype's flags; and the ratios against the issue's targets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import docker  # noqa: E402

import sandbox  # noqa: E402
from sandbox import Limits, RunSpec  # noqa: E402
from sandbox.images import image_tag  # noqa: E402

CODE = {"python": "def main(a, b):\n    return a + b\n", "node": "function main(a, b) { return a + b; }\n"}
NAIVE_CMD = {"python": ["python3", "-c", "print(2 + 3)"], "node": ["node", "-e", "console.log(2 + 3)"]}


def pct(samples: list[float], p: float) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[int(p) - 1]


def summary(samples: list[float]) -> str:
    return (
        f"p50={statistics.median(samples):6.1f} ms  p95={pct(samples, 95):6.1f} ms  "
        f"p99={pct(samples, 99):6.1f} ms  n={len(samples)}"
    )


def closed_loop(clients: int, seconds: float, one_job) -> tuple[list[float], float]:
    """C clients each running jobs back to back for T seconds; returns latencies and jobs/s."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    errors = []

    def client(i: int) -> None:
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                one_job(i)
            except Exception as exc:  # noqa: BLE001 - reported, not hidden
                errors.append(exc)
                return
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            latencies.extend(mine)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if errors:
        raise errors[0]
    return latencies, len(latencies) / elapsed


def warm(pool: sandbox.Sandbox, runtime: str, clients: int, seconds: float) -> tuple[list[float], float]:
    tenant = f"bench-{uuid.uuid4().hex[:6]}"
    spec = RunSpec(runtime=runtime, code=CODE[runtime], args=[2, 3], tenant=tenant)
    for _ in range(clients * 3):  # start the tenant's cells and warm them
        threads = [threading.Thread(target=pool.run, args=(spec,)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def one(i: int) -> None:
        result = pool.run(spec)
        if result.status != "succeeded" or result.result != 5:
            raise RuntimeError(f"bad result: {result.status} {result.error}")

    return closed_loop(clients, seconds, one)


def first_job(runtime: str, with_spare: bool, rounds: int) -> list[float]:
    limits = Limits()
    spares = ((runtime, limits),) if with_spare else ()
    pool = sandbox.Sandbox(reuse="tenant", spare_profiles=spares, spares_per_profile=1)
    samples = []
    try:
        for _ in range(rounds):
            if with_spare:
                pool.maintain()  # refill between samples, as the background thread does
                if runtime == "node":
                    time.sleep(0.3)  # let the spare's pre-started node process finish booting
            spec = RunSpec(
                runtime=runtime,
                code=CODE[runtime],
                args=[2, 3],
                tenant=f"new-{uuid.uuid4().hex[:8]}",
                limits=limits,
            )
            t0 = time.perf_counter()
            result = pool.run(spec)
            samples.append((time.perf_counter() - t0) * 1000)
            assert result.status == "succeeded", result.error
    finally:
        pool.close()
    return samples


def naive(
    client: docker.DockerClient, runtime: str, clients: int, seconds: float
) -> tuple[list[float], float]:
    image = image_tag(runtime)

    def one(i: int) -> None:
        out = client.containers.run(
            image,
            NAIVE_CMD[runtime],
            entrypoint=[],
            remove=True,
            mem_limit="512m",
            nano_cpus=1_000_000_000,
            network_mode="none",
            read_only=True,
        )
        if out.strip() != b"5":
            raise RuntimeError(out)

    return closed_loop(clients, seconds, one)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--first-rounds", type=int, default=20)
    args = parser.parse_args()
    client = docker.from_env()
    print(
        f"engine {client.version()['Version']}, {os.cpu_count()} cores, {args.clients} "
        f"clients, {args.seconds:.0f} s per run\n"
    )

    pool = sandbox.Sandbox(reuse="tenant")
    results = {}
    try:
        for runtime in ("python", "node"):
            lat, rate = warm(pool, runtime, args.clients, args.seconds)
            results[runtime] = (lat, rate)
            print(f"warm {runtime:<6}  {summary(lat)}  throughput={rate:7.1f} jobs/s")
    finally:
        pool.close()

    print()
    for runtime in ("python", "node"):
        for with_spare in (True, False):
            rounds = args.first_rounds if with_spare else max(5, args.first_rounds // 2)
            lat = first_job(runtime, with_spare, rounds)
            label = "spare available" if with_spare else "no spare      "
            print(f"first job of a new tenant, {runtime:<6} {label}  {summary(lat)}")
            results[(runtime, with_spare)] = lat

    print()
    for runtime in ("python",):
        lat, rate = naive(client, runtime, args.clients, args.seconds)
        results[("naive", runtime)] = (lat, rate)
        print(f"naive docker run --rm {runtime:<6}  {summary(lat)}  throughput={rate:7.1f} jobs/s")

    py_lat, py_rate = results["python"]
    node_lat, _ = results["node"]
    naive_rate = results[("naive", "python")][1]
    first_spare = results[("python", True)]
    print("\ntargets (this 2-core machine):")
    checks = [
        ("python warm p50 <= 6 ms", statistics.median(py_lat), 6, True),
        ("python warm p95 <= 12 ms", pct(py_lat, 95), 12, True),
        ("python throughput >= 300 jobs/s", py_rate, 300, False),
        ("first job with a spare p95 <= 15 ms", pct(first_spare, 95), 15, True),
        ("node warm p50 <= 50 ms", statistics.median(node_lat), 50, True),
        ("throughput >= 50x naive", py_rate / naive_rate, 50, False),
    ]
    for name, value, target, lower_is_better in checks:
        ok = value <= target if lower_is_better else value >= target
        print(f"  {'MET ' if ok else 'MISS'}  {name:<38} measured {value:8.1f}")


if __name__ == "__main__":
    main()
