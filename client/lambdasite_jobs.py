"""The `lambdasite` job commands: run, steps, event, logs, jobs, get, cancel, retry; and the job flags
(limits, priority) that deploy and invoke take too."""

from __future__ import annotations

import argparse
import json
import os

try:
    from lambdasite_client import RUNTIME_BY_SUFFIX, Client
    from lambdasite_output import UsageError, finish, print_job, print_line
    from lambdasite_placement import add_placement, placement
except ImportError:  # in the repository: client/ is a package
    from .lambdasite_client import RUNTIME_BY_SUFFIX, Client
    from .lambdasite_output import UsageError, finish, print_job, print_line
    from .lambdasite_placement import add_placement, placement


def add_limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout-ms", type=int)
    parser.add_argument("--memory-mb", type=int)
    parser.add_argument("--max-retries", type=int)


def add_job_commands(sub) -> None:
    run = sub.add_parser("run", help="submit a file's handler")
    run.add_argument("file")
    run.add_argument("--args", default="[]", help="JSON array of arguments")
    run.add_argument("--runtime", choices=["python", "node"], help="default: from the file's extension")
    run.add_argument("--handler", default=None)
    add_limits(run)
    run.add_argument("--wait", action="store_true", help="wait for the result and print it")
    run.add_argument("--durable", action="store_true", help="a durable run: the handler gets ctx first")
    add_priority(run)
    add_placement(run)
    run.set_defaults(command_fn=_run)
    steps = sub.add_parser("steps", help="list a durable run's recorded steps")
    steps.add_argument("job")
    steps.set_defaults(command_fn=_steps)
    event = sub.add_parser("event", help="send an event: the durable runs waiting for it resume")
    event.add_argument("event")
    event.add_argument("key", nargs="?", default="")
    event.add_argument("--data", default="null", help="JSON: what the waiting runs receive")
    event.set_defaults(command_fn=_event)
    logs = sub.add_parser("logs", help="print a job's output")
    logs.add_argument("job")
    logs.add_argument("--follow", "-f", action="store_true")
    logs.set_defaults(command_fn=_logs)
    jobs = sub.add_parser("jobs", help="list recent jobs")
    jobs.add_argument("--status")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(command_fn=_jobs)
    for name in ("get", "cancel", "retry"):
        action = sub.add_parser(name)
        action.add_argument("job")
        action.set_defaults(command_fn=_job_action)


def add_priority(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--priority",
        type=int,
        choices=range(10),
        metavar="0-9",
        help="default 5: higher waiting jobs go first",
    )


def _run(client: Client, opts) -> int:
    runtime = opts.runtime or RUNTIME_BY_SUFFIX.get(os.path.splitext(opts.file)[1])
    if runtime is None:
        raise UsageError("cannot tell the runtime from the file name; pass --runtime")
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
        durable=True if opts.durable else None,
        priority=opts.priority,
        wait=30 if opts.wait else None,
        **placement(opts),
    )
    return finish(client, job, opts.wait)


def _steps(client: Client, opts) -> int:
    after = 0
    while True:
        page = client.steps(opts.job, after=after)
        for step in page["steps"]:
            outcome = step["error"]["type"] if step["error"] else json.dumps(step["result"])
            print(f"{step['seq']:>4} {step['name']:<24} {step['kind']:<6} {step['status']:<9} {outcome}")
        if not page["steps"] or page["complete"] or page["next_after"] == after:
            return 0
        after = page["next_after"]


def _event(client: Client, opts) -> int:
    try:
        data = json.loads(opts.data)
    except ValueError:
        raise UsageError("--data takes JSON") from None
    print(json.dumps(client.send_event(opts.event, opts.key, data)))
    return 0


def _logs(client: Client, opts) -> int:
    source = client.follow(opts.job) if opts.follow else client.logs(opts.job)["lines"]
    for line in source:
        print_line(line, flush=True)
    return 0


def _jobs(client: Client, opts) -> int:
    for job in client.jobs(status=opts.status, limit=opts.limit)["results"]:
        print(
            f"{job['id']}  {job['status']:<10} {job['runtime']:<6} {job['created_at']}  "
            f"{job['duration_ms'] or '':>10}"
        )
    return 0


def _job_action(client: Client, opts) -> int:
    """get, cancel or retry one job and print it."""
    print_job({"get": client.job, "cancel": client.cancel, "retry": client.retry}[opts.command](opts.job))
    return 0
