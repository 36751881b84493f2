"""The `lambdasite` schedule and webhook commands: cron schedules that invoke a function, endpoints told
of a job's end."""

from __future__ import annotations

import json
import sys

try:
    from lambdasite_client import Client
except ImportError:  # in the repository: client/ is a package
    from .lambdasite_client import Client


def add_schedule_and_webhook_commands(sub) -> None:
    schedule = sub.add_parser("schedule", help="create a cron schedule that invokes a function")
    create = schedule.add_subparsers(dest="action", required=True).add_parser("create")
    create.add_argument("name")
    create.add_argument("--cron", required=True, help="5 fields, or 6 with seconds first")
    create.add_argument("--function", required=True)
    create.add_argument("--timezone", help="IANA name, default UTC")
    create.add_argument("--qualifier", help="alias or version (default: the latest ready version)")
    create.add_argument("--args", default=None, help="JSON array passed to every run")
    create.add_argument("--overlap", choices=["skip", "allow"])
    create.add_argument("--catch-up", choices=["none", "latest"])
    create.set_defaults(command_fn=_schedule)
    sub.add_parser("schedules", help="list schedules with their next run").set_defaults(command_fn=_schedules)
    webhook = sub.add_parser("webhook", help="register a webhook endpoint")
    hook = webhook.add_subparsers(dest="action", required=True).add_parser("create")
    hook.add_argument("url")
    hook.add_argument("--events", required=True, help="comma-separated, e.g. job.failed,job.dead")
    hook.add_argument("--function", help="only this function's jobs")
    hook.set_defaults(command_fn=_webhook)
    sub.add_parser("webhooks", help="list webhook endpoints").set_defaults(command_fn=_webhooks)


def _schedule(client: Client, opts) -> int:
    created = client.schedule_create(
        opts.name,
        cron=opts.cron,
        function=opts.function,
        timezone=opts.timezone,
        qualifier=opts.qualifier,
        args=json.loads(opts.args) if opts.args else None,
        overlap=opts.overlap,
        catch_up=opts.catch_up,
    )
    print(json.dumps(created, indent=2))
    return 0


def _schedules(client: Client, opts) -> int:
    for s in client.schedules():
        state = "active" if s["enabled"] else f"paused: {s['paused_reason'] or ''}"
        following = s["next_fire_times"][0] if s["next_fire_times"] else "-"
        where = f"{s['cron']:<16} {s['timezone']:<16}"
        print(f"{s['name']:<24} {where} {s['function']:<20} next {following}  {state}")
    return 0


def _webhook(client: Client, opts) -> int:
    created = client.webhook_create(
        opts.url, [e.strip() for e in opts.events.split(",") if e.strip()], opts.function
    )
    print(json.dumps(created, indent=2))
    print("the secret is shown only now: keep it to verify webhook-signature", file=sys.stderr)
    return 0


def _webhooks(client: Client, opts) -> int:
    for e in client.webhooks():
        state = "enabled" if e["enabled"] else f"disabled: {e['disabled_reason'] or ''}"
        print(f"{e['id']}  {e['url']}  {','.join(e['events'])}  {state}")
    return 0
