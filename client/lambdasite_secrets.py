"""The `lambdasite secret` commands: set (the value from stdin or a prompt, never an argument), list, rm."""

from __future__ import annotations

import getpass
import sys

try:
    from lambdasite_client import Client
except ImportError:  # in the repository: client/ is a package
    from .lambdasite_client import Client


def add_secret_commands(sub) -> None:
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
