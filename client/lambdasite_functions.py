"""The `lambdasite` function commands: deploy (with what a version reaches and is given), invoke, limits
(flow control), functions, versions, alias."""

from __future__ import annotations

import argparse
import json
import sys

try:
    from lambdasite_client import Client, read_function_dir
    from lambdasite_jobs import add_limits, add_priority
    from lambdasite_output import UsageError, finish
    from lambdasite_placement import add_placement, placement
except ImportError:  # in the repository: client/ is a package
    from .lambdasite_client import Client, read_function_dir
    from .lambdasite_jobs import add_limits, add_priority
    from .lambdasite_output import UsageError, finish
    from .lambdasite_placement import add_placement, placement


def add_function_commands(sub) -> None:
    deploy = sub.add_parser("deploy", help="deploy a function (a folder or its handler file)")
    deploy.add_argument(
        "path", help="folder with handler.py/index.js (+ requirements.txt/package.json), or a file"
    )
    deploy.add_argument("--name", required=True)
    deploy.add_argument("--runtime", choices=["python", "node"])
    deploy.add_argument("--handler")
    add_limits(deploy)
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
    add_priority(invoke)
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
                raise UsageError("--egress none or public stands alone (or give host:port patterns)")
            fields["egress"] = words[0]
        else:
            fields["egress"] = words
    for option, given, clear, field in (
        ("--secret", opts.secret, opts.no_secrets, "secrets"),
        ("--env", opts.env, opts.no_env, "env"),
    ):
        if given and clear:
            raise UsageError(f"{option} and --no-{field} exclude each other")
        if given or clear:
            fields[field] = _pairs(option, given) if given else {}
    return fields


def _pairs(option: str, items: list[str]) -> dict:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"{option} takes NAME=VALUE, not {item!r}")
        if name in pairs:
            raise UsageError(f"{option} {name} is given twice")
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
    return finish(client, job, opts.wait)


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
