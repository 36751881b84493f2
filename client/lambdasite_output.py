"""What the `lambdasite` commands print of a job (its id, or its output and result), and the
mistake in a command line that they report like argparse's own (`UsageError`)."""

from __future__ import annotations

import json
import sys

try:
    from lambdasite_client import FINISHED, Client
except ImportError:  # in the repository: client/ is a package
    from .lambdasite_client import FINISHED, Client


class UsageError(Exception):
    """A mistake in the command line found after parsing: reported like argparse's own."""


def print_job(job: dict) -> None:
    print(json.dumps(job, indent=2, default=str))


def print_line(line: dict, *, flush: bool = False) -> None:
    print(line["text"], file=sys.stderr if line["stream"] == "stderr" else sys.stdout, flush=flush)


def finish(client: Client, job: dict, wait: bool) -> int:
    """Print a job's id (not waiting), or its output and result."""
    if not wait:
        print(job["id"])
        return 0
    if job["status"] not in FINISHED:
        job = client.wait(job["id"])
    for line in client.follow(job["id"]):
        print_line(line)
    if job["status"] == "succeeded":
        print(json.dumps(job["result"]))
        return 0
    print(f"{job['status']}: {json.dumps(job.get('error'))}", file=sys.stderr)
    return 1
