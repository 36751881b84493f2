"""The `lambdasite route` commands: serve a function at a public URL (add, list, rm), replay a request."""

from __future__ import annotations

import sys

try:
    from lambdasite_client import Client
    from lambdasite_output import UsageError, finish
except ImportError:  # in the repository: client/ is a package
    from .lambdasite_client import Client
    from .lambdasite_output import UsageError, finish


def add_route_commands(sub) -> None:
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


def _auth(opts) -> dict:
    if opts.auth == "basic":
        if not (opts.user and opts.secret):
            raise UsageError("--auth basic needs --user and --secret (the secret holding the password)")
        return {"type": "basic", "username": opts.user, "secret": opts.secret}
    if opts.auth == "hmac":
        if not (opts.preset and opts.secret):
            raise UsageError("--auth hmac needs --preset and --secret (the secret holding the signing key)")
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
    return finish(client, job, opts.wait)
