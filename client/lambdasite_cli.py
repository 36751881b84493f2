"""The `lambdasite` command line (standard library only); the API client is lambdasite_client.

export LAMBDASITE_URL=http://127.0.0.1:8000 LAMBDASITE_KEY=lsk_...
lambdasite run handler.py --args '[2, 3]' --wait
lambdasite logs JOB_ID --follow
lambdasite jobs [--status failed,dead]
lambdasite get JOB_ID | cancel JOB_ID | retry JOB_ID
lambdasite deploy ./my-function --name slugify     # handler file + requirements.txt / package.json
lambdasite deploy ./notify --name notify --egress hooks.slack.com:443 --secret TOKEN=slack --env CHANNEL=ops
lambdasite secret set slack < token.txt             # or typed at a prompt; never an argument
lambdasite secret list | secret rm slack
lambdasite invoke slugify:prod --args '["Hello World"]' --wait
lambdasite deploy ./approve --name approve --durable # a durable function: its handler gets ctx first
lambdasite steps JOB_ID                              # a durable run's recorded steps
lambdasite event order.approved o-1234 --data '{"approved": true}'   # resume the runs waiting for it
lambdasite functions | versions NAME | alias NAME prod 3
lambdasite schedule create nightly --cron '30 2 * * *' --timezone Europe/Berlin --function report
lambdasite schedules
lambdasite webhook create https://example.com/hook --events job.failed,job.dead
lambdasite route add hello /hello/{name} --method GET           # -> its public URL
lambdasite route add stripe-events /stripe --auth hmac --preset stripe --secret stripe --async
lambdasite route list hello | route rm hello ROUTE_ID | route replay JOB_ID --qualifier 2 --wait
lambdasite deploy ./sync --name sync --max-concurrency 5 --concurrency-key '$[0].store_id'  # flow control
lambdasite limits sync --reserved-concurrency 2 --concurrency-per-key 1   # change it without deploying
lambdasite invoke sync --args '[{"store_id": 42}]' --priority 8      # 0-9, default 5; run takes it too
lambdasite deploy ./etl --name etl --pool default --overflow burst --after-wait 2  # also on run, invoke
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

try:
    from lambdasite_client import FINISHED, RUNTIME_BY_SUFFIX, ApiError, Client, read_function_dir
    from lambdasite_placement import add_placement, placement
except ImportError:  # in the repository: client/ is a package
    from .lambdasite_client import FINISHED, RUNTIME_BY_SUFFIX, ApiError, Client, read_function_dir
    from .lambdasite_placement import add_placement, placement


class _UsageError(Exception):
    """A mistake in the command line found after parsing: reported like argparse's own."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    opts = parser.parse_args(argv)
    try:
        return opts.command_fn(Client(), opts)
    except _UsageError as exc:
        parser.error(str(exc))
    except (ApiError, OSError, ValueError) as exc:
        print(f"lambdasite: {exc}", file=sys.stderr)
        return 2


# The parser: each subcommand names its handler with set_defaults(command_fn=...).


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambdasite", description="Run functions on a Lambdasite server.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_job_commands(sub)
    _add_function_commands(sub)
    _add_schedule_and_webhook_commands(sub)
    _add_secret_commands(sub)
    _add_route_commands(sub)
    return parser


def _add_limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout-ms", type=int)
    parser.add_argument("--memory-mb", type=int)
    parser.add_argument("--max-retries", type=int)


def _add_job_commands(sub) -> None:
    run = sub.add_parser("run", help="submit a file's handler")
    run.add_argument("file")
    run.add_argument("--args", default="[]", help="JSON array of arguments")
    run.add_argument("--runtime", choices=["python", "node"], help="default: from the file's extension")
    run.add_argument("--handler", default=None)
    _add_limits(run)
    run.add_argument("--wait", action="store_true", help="wait for the result and print it")
    run.add_argument("--durable", action="store_true", help="a durable run: the handler gets ctx first")
    _add_priority(run)
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


def _add_function_commands(sub) -> None:
    deploy = sub.add_parser("deploy", help="deploy a function (a folder or its handler file)")
    deploy.add_argument(
        "path", help="folder with handler.py/index.js (+ requirements.txt/package.json), or a file"
    )
    deploy.add_argument("--name", required=True)
    deploy.add_argument("--runtime", choices=["python", "node"])
    deploy.add_argument("--handler")
    _add_limits(deploy)
    deploy.add_argument("--description")
    _add_reach(deploy)
    _add_flow(deploy)
    add_placement(deploy)
    deploy.add_argument("--no-wait", action="store_true", help="do not wait for the build")
    deploy.add_argument(
        "--durable",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="its invocations are durable runs (left out: the previous version's)",
    )
    deploy.set_defaults(command_fn=_deploy)
    invoke = sub.add_parser("invoke", help="invoke a deployed function: NAME or NAME:ALIAS or NAME:VERSION")
    invoke.add_argument("target")
    invoke.add_argument("--args", default="[]", help="JSON array of arguments")
    invoke.add_argument("--wait", action="store_true", help="wait for the result and print it")
    _add_priority(invoke)
    add_placement(invoke)
    invoke.set_defaults(command_fn=_invoke)
    limits = sub.add_parser("limits", help="set a function's flow control (max, reserved, key) and print it")
    limits.add_argument("name")
    _add_flow(limits)
    limits.set_defaults(command_fn=_limits)
    sub.add_parser("functions", help="list deployed functions").set_defaults(command_fn=_functions)
    versions = sub.add_parser("versions", help="list a function's versions")
    versions.add_argument("name")
    versions.set_defaults(command_fn=_versions)
    alias = sub.add_parser("alias", help="point an alias at a version (optionally with a canary)")
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", type=int)
    alias.add_argument("--canary", type=int, help="a second version that gets --weight of the calls")
    alias.add_argument("--weight", type=float)
    alias.set_defaults(command_fn=_alias)


def _add_priority(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--priority",
        type=int,
        choices=range(10),
        metavar="0-9",
        help="default 5: higher waiting jobs go first",
    )


def _count_or_none(text: str):
    """A flow-control number, or "none" to clear it (sent as null)."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number or none, not {text!r}") from None


def _add_flow(parser: argparse.ArgumentParser) -> None:
    """Flow control (left out: unchanged; none clears)."""
    parser.add_argument("--max-concurrency", type=_count_or_none, default=..., metavar="N|none")
    parser.add_argument("--reserved-concurrency", type=_count_or_none, default=..., metavar="N|none")
    parser.add_argument(
        "--concurrency-key", default=..., metavar="PATH", help="e.g. '$[0].store_id'; '' removes the key"
    )
    parser.add_argument("--concurrency-per-key", type=_count_or_none, default=..., metavar="N|none")


def _flow(opts) -> dict:
    names = ("max_concurrency", "reserved_concurrency", "concurrency_key", "concurrency_per_key")
    return {name: getattr(opts, name) for name in names if getattr(opts, name) is not ...}


def _add_reach(deploy: argparse.ArgumentParser) -> None:
    """What the version reaches and is given; each left out is the previous version's."""
    deploy.add_argument(
        "--egress",
        action="append",
        metavar="HOST:PORT|none|public",
        help="where the function may connect (repeat for several host:port; none: no network)",
    )
    deploy.add_argument(
        "--secret", action="append", metavar="ENV=NAME", help="bind the secret NAME as $ENV (repeatable)"
    )
    deploy.add_argument("--env", action="append", metavar="NAME=VALUE", help="configuration (repeatable)")
    deploy.add_argument("--no-secrets", action="store_true", help="bind no secret (drop the previous ones)")
    deploy.add_argument("--no-env", action="store_true", help="no configuration (drop the previous one)")


def _add_secret_commands(sub) -> None:
    secret = sub.add_parser("secret", help="set, list or remove this tenant's secrets (setting: owners)")
    actions = secret.add_subparsers(dest="action", required=True)
    put = actions.add_parser(
        "set", help="create or rotate a secret; the value is read from stdin or a prompt"
    )
    put.add_argument("name")
    put.add_argument(
        "--keep-newline", action="store_true", help="keep the final newline of a value read from stdin"
    )
    put.set_defaults(command_fn=_secret_set)
    actions.add_parser("list", help="names, revisions, fingerprints, who and when").set_defaults(
        command_fn=_secrets
    )
    remove = actions.add_parser("rm", help="delete a secret (its value is erased)")
    remove.add_argument("name")
    remove.set_defaults(command_fn=_secret_rm)


def _add_route_commands(sub) -> None:
    route = sub.add_parser("route", help="serve a function at a public URL (add, list, rm), replay a request")
    actions = route.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="a route: FUNCTION PATH (e.g. /hello/{name}); prints its URL")
    add.add_argument("function")
    add.add_argument("path")
    add.add_argument("--method", action="append", metavar="METHOD", help="accepted method (repeatable)")
    add.add_argument("--qualifier", help="alias or version it runs (default: the latest ready version)")
    add.add_argument("--async", dest="mode", action="store_const", const="async", help="answer 202 at once")
    add.add_argument("--auth", choices=["none", "api_key", "basic", "hmac"], default="none")
    add.add_argument("--secret", help="basic: the secret holding the password; hmac: the signing key")
    add.add_argument("--user", help="basic: the user name")
    add.add_argument("--preset", choices=["github", "stripe", "slack", "standard-webhooks", "custom"])
    add.add_argument("--header", help="custom hmac: the header holding the signature")
    add.add_argument("--algorithm", choices=["sha256", "sha1", "sha512"])
    add.add_argument("--encoding", choices=["hex", "base64"])
    add.add_argument("--prefix", help='custom hmac: before the signature, e.g. "sha256="')
    add.add_argument("--delivery-header", help="a request header naming the delivery (one job per delivery)")
    add.add_argument("--cors", action="append", metavar="ORIGIN", help="allowed origin (repeatable)")
    add.add_argument("--max-body-bytes", type=int)
    add.add_argument("--rate-limit", type=int, metavar="PER_MINUTE")
    add.add_argument("--expose-errors", action="store_true", help="a failure's traceback in its 502")
    add.add_argument("--description")
    add.set_defaults(command_fn=_route_add)
    listing = actions.add_parser("list", help="a function's routes")
    listing.add_argument("function")
    listing.set_defaults(command_fn=_routes)
    remove = actions.add_parser("rm", help="delete a route (its URL then answers 404)")
    remove.add_argument("function")
    remove.add_argument("route_id")
    remove.set_defaults(command_fn=_route_rm)
    again = actions.add_parser("replay", help="run a route's job's request again as another version")
    again.add_argument("job_id")
    again.add_argument("--qualifier", help="version or alias (default: the route's)")
    again.add_argument("--wait", action="store_true", help="wait for the result and print it")
    again.set_defaults(command_fn=_route_replay)


def _add_schedule_and_webhook_commands(sub) -> None:
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


# Jobs


def _print_job(job: dict) -> None:
    print(json.dumps(job, indent=2, default=str))


def _print_line(line: dict, *, flush: bool = False) -> None:
    print(line["text"], file=sys.stderr if line["stream"] == "stderr" else sys.stdout, flush=flush)


def _finish(client: Client, job: dict, wait: bool) -> int:
    """Print a job's id (not waiting), or its output and result."""
    if not wait:
        print(job["id"])
        return 0
    if job["status"] not in FINISHED:
        job = client.wait(job["id"])
    for line in client.follow(job["id"]):
        _print_line(line)
    if job["status"] == "succeeded":
        print(json.dumps(job["result"]))
        return 0
    print(f"{job['status']}: {json.dumps(job.get('error'))}", file=sys.stderr)
    return 1


def _run(client: Client, opts) -> int:
    runtime = opts.runtime or RUNTIME_BY_SUFFIX.get(os.path.splitext(opts.file)[1])
    if runtime is None:
        raise _UsageError("cannot tell the runtime from the file name; pass --runtime")
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
    return _finish(client, job, opts.wait)


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
        raise _UsageError("--data takes JSON") from None
    print(json.dumps(client.send_event(opts.event, opts.key, data)))
    return 0


def _logs(client: Client, opts) -> int:
    source = client.follow(opts.job) if opts.follow else client.logs(opts.job)["lines"]
    for line in source:
        _print_line(line, flush=True)
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
    _print_job({"get": client.job, "cancel": client.cancel, "retry": client.retry}[opts.command](opts.job))
    return 0


# Functions


def _deploy(client: Client, opts) -> int:
    found = read_function_dir(opts.path, opts.runtime)
    version = client.deploy(
        name=opts.name,
        runtime=found["runtime"],
        code=found["code"],
        requirements=found.get("requirements"),
        dependencies=found.get("dependencies"),
        handler=opts.handler,
        timeout_ms=opts.timeout_ms,
        memory_mb=opts.memory_mb,
        max_retries=opts.max_retries,
        description=opts.description,
        durable=opts.durable,
        flow={**_flow(opts), **placement(opts)},  # function settings: with the function, or PATCHed
        **_reach(opts),
    )
    number = version["number"]
    print(
        f"deployed {opts.name} version {number} from {found['file']} ({version['status']})", file=sys.stderr
    )
    if version["status"] == "building" and not opts.no_wait:
        for line in client.follow_build(opts.name, number):
            print(line["text"], file=sys.stderr)
        version = client.version(opts.name, number)
    print(json.dumps({"function": opts.name, "version": number, "status": version["status"]}))
    if version["status"] == "failed":
        print(f"build failed: {version.get('build_error')}", file=sys.stderr)
        return 1
    return 0


def _reach(opts) -> dict:
    """--egress, --secret and --env as the API's fields (left out: not sent, the previous version's)."""
    fields: dict = {}
    if opts.egress:
        words = [e.strip() for e in opts.egress]
        if any(w in ("none", "public") for w in words):
            if len(words) > 1:
                raise _UsageError("--egress none or public stands alone (or give host:port patterns)")
            fields["egress"] = words[0]
        else:
            fields["egress"] = words
    for option, given, clear, field in (
        ("--secret", opts.secret, opts.no_secrets, "secrets"),
        ("--env", opts.env, opts.no_env, "env"),
    ):
        if given and clear:
            raise _UsageError(f"{option} and --no-{field} exclude each other")
        if given or clear:
            fields[field] = _pairs(option, given) if given else {}
    return fields


def _pairs(option: str, items: list[str]) -> dict:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _UsageError(f"{option} takes NAME=VALUE, not {item!r}")
        if name in pairs:
            raise _UsageError(f"{option} {name} is given twice")
        pairs[name] = value
    return pairs


def _invoke(client: Client, opts) -> int:
    name, _, qualifier = opts.target.partition(":")
    job = client.invoke(
        name,
        json.loads(opts.args),
        qualifier=qualifier or None,
        wait=30 if opts.wait else None,
        priority=opts.priority,
        **placement(opts),
    )
    return _finish(client, job, opts.wait)


def _limits(client: Client, opts) -> int:
    function = client.function_update(opts.name, **_flow(opts))
    names = ("max_concurrency", "reserved_concurrency", "concurrency_key", "concurrency_per_key")
    print(json.dumps({"function": function["name"], **{name: function[name] for name in names}}))
    return 0


def _functions(client: Client, opts) -> int:
    for f in client.functions():
        state = "disabled" if f["disabled"] else ""
        print(f"{f['name']:<32} {f['runtime']:<6} v{f['latest_version']:<4} {state}")
    return 0


def _versions(client: Client, opts) -> int:
    for v in client.versions(opts.name):
        print(f"v{v['number']:<4} {v['status']:<9} {v['created_at']}  {(v.get('content_hash') or '')[:12]}")
    return 0


def _alias(client: Client, opts) -> int:
    print(
        json.dumps(client.alias(opts.name, opts.alias, opts.version, canary=opts.canary, weight=opts.weight))
    )
    return 0


# Schedules and webhooks


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


# Routes


def _auth(opts) -> dict:
    if opts.auth == "basic":
        if not (opts.user and opts.secret):
            raise _UsageError("--auth basic needs --user and --secret (the secret holding the password)")
        return {"type": "basic", "username": opts.user, "secret": opts.secret}
    if opts.auth == "hmac":
        if not (opts.preset and opts.secret):
            raise _UsageError("--auth hmac needs --preset and --secret (the secret holding the signing key)")
        auth = {"type": "hmac", "preset": opts.preset, "secret": opts.secret}
        for name in ("header", "algorithm", "encoding", "prefix"):
            if getattr(opts, name) is not None:
                auth[name] = getattr(opts, name)
        return auth
    return {"type": opts.auth}


def _route_add(client: Client, opts) -> int:
    created = client.route_create(
        opts.function,
        opts.path,
        methods=[m.upper() for m in opts.method] if opts.method else None,
        qualifier=opts.qualifier,
        mode=opts.mode,
        auth=_auth(opts),
        delivery_header=opts.delivery_header,
        cors=opts.cors,
        max_body_bytes=opts.max_body_bytes,
        rate_limit_per_minute=opts.rate_limit,
        expose_errors=opts.expose_errors or None,
        description=opts.description,
    )
    print(f"{client.url}{created['url']}")
    print(f"route {created['id']}: {' '.join(created['methods'])}, {created['mode']}", file=sys.stderr)
    return 0


def _routes(client: Client, opts) -> int:
    for r in client.routes(opts.function):
        auth = r["auth"]["type"] + (f":{r['auth']['preset']}" if r["auth"].get("preset") else "")
        methods, runs = ",".join(r["methods"]), r["qualifier"] or "latest"
        print(f"{r['id']}  {client.url}{r['url']}  {methods:<12} {auth:<20} {r['mode']} {runs}")
    return 0


def _route_rm(client: Client, opts) -> int:
    client.route_delete(opts.function, opts.route_id)
    print(f"route {opts.route_id} deleted", file=sys.stderr)
    return 0


def _route_replay(client: Client, opts) -> int:
    job = client.replay(opts.job_id, opts.qualifier, wait=30 if opts.wait else None)
    return _finish(client, job, opts.wait)


# Secrets


def _secret_value(name: str, keep_newline: bool) -> str:
    """The value to store: stdin when it is not a terminal (e.g. ``< key.pem`` or a pipe), else
    typed at a prompt that does not echo. Never an argument: arguments reach shell histories and
    every process listing."""
    if not sys.stdin.isatty():
        value = sys.stdin.read()
        return value if keep_newline else value.removesuffix("\n").removesuffix("\r")
    value = getpass.getpass(f"Value of {name} (not shown): ")
    if value != getpass.getpass("Again: "):
        raise ValueError("the two values differ; nothing was stored")
    return value


def _secret_set(client: Client, opts) -> int:
    stored = client.secret_set(opts.name, _secret_value(opts.name, opts.keep_newline))
    state = "created" if stored["revision"] == 1 else f"rotated to revision {stored['revision']}"
    print(f"secret {stored['name']} {state} (fingerprint {stored['fingerprint']})")
    return 0


def _secrets(client: Client, opts) -> int:
    for s in client.secrets():
        print(f"{s['name']:<32} r{s['revision']:<4} {s['fingerprint']}  {s['updated_at']}  {s['updated_by']}")
    return 0


def _secret_rm(client: Client, opts) -> int:
    client.secret_delete(opts.name)
    print(f"secret {opts.name} deleted", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
