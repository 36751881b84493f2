"""The `lambdasite` command line's placement flags (run, invoke, deploy): where a job runs.

--pool eu                                   the home pool (no overflow): {"pool": "eu"}
--pool default --overflow burst --after-wait 2
                                            {"placement": {"pool": "default", "overflow": ["burst"],
                                             "after_wait_s": 2}}: after 2 s of waiting, the first
                                            overflow pool with room
The server checks the names and the numbers (a 400 names what is wrong)."""

from __future__ import annotations

import argparse


def add_placement(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", metavar="NAME", help="the worker pool to run in (default: the function's)")
    parser.add_argument(
        "--overflow",
        metavar="A,B",
        help="pools to overflow to, in order, once the job has waited --after-wait",
    )
    parser.add_argument("--after-wait", type=float, metavar="SECONDS", help="how long before it may overflow")


def placement(opts) -> dict:
    """The body's placement fields for these flags ({} when none was given)."""
    if opts.overflow is None and opts.after_wait is None:
        return {} if opts.pool is None else {"pool": opts.pool}
    overflow = [name.strip() for name in (opts.overflow or "").split(",") if name.strip()]
    body: dict = {"overflow": overflow, "after_wait_s": opts.after_wait}
    if opts.pool is not None:
        body["pool"] = opts.pool
    return {"placement": body}
