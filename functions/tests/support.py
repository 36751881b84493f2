"""Helpers of the functions tests (and of other apps' tests that need a function): JSON calls as a
persona, and the adder function deployed straight through the service."""

from __future__ import annotations

import json

from functions.services.deploy import VersionSpec, function_create

PY_ADD = "def main(a, b):\n    return a + b\n"


def call(persona, method: str, path: str, body=None, **extra):
    send = getattr(persona.client, method.lower())
    if body is None:
        return send(path, **extra)
    return send(path, data=json.dumps(body), content_type="application/json", **extra)


def deploy(persona, name: str = "adder", runtime: str = "python", code: str = PY_ADD, **fields):
    return call(
        persona, "POST", "/api/v1/functions", {"name": name, "runtime": runtime, "code": code, **fields}
    )


def invoke(persona, name: str, args=(), qualifier: str | None = None, wait: float | None = None, **extra):
    query = []
    if qualifier is not None:
        query.append(f"qualifier={qualifier}")
    if wait is not None:
        query.append(f"wait={wait}")
    path = f"/api/v1/functions/{name}/invoke" + ("?" + "&".join(query) if query else "")
    return call(persona, "POST", path, {"args": list(args)}, **extra)


def make_adder(tenant):
    """The function "adder" (PY_ADD, Python) with its version 1, made through the service. -> Function"""
    function, _ = function_create(
        tenant=tenant, user=None, name="adder", runtime="python", spec=VersionSpec(code=PY_ADD)
    )
    return function
