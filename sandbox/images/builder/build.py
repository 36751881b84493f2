"""Lambdasite dependency builder: runs inside a builder container, never in a sandbox cell.

It has no network of its own (network ``none``): its only way out is the platform's proxy,
whose Unix socket is mounted at /egress and which tunnels to the package index and registry
only. ``egress.forward_proxy`` offers that socket on a loopback port, and pip, npm and urllib are
pointed at it. It never runs package code: Python installs wheels only (``--only-binary=:all:``: building an
sdist would run its setup code), Node installs with ``--ignore-scripts`` and refuses
any package that declares an install script.

Input: one JSON object on stdin, ``{"op": "resolve" | "install", "runtime": ...}`` with
``requirements`` (Python) or ``dependencies`` (Node) to resolve, or ``lock`` to install
into /layer. Progress goes to stderr (the build log); the answer is the last line of
stdout: ``{"ok": true, ...}`` or ``{"ok": false, "error": "a readable reason"}``.

This file is the entry point; the steps live beside it (``buildenv``, ``egress``, ``pydeps``,
``nodedeps``, ``layer``), all copied into the builder images from ``sandbox/images/builder/``.
"""

import json
import os
import sys

from buildenv import CA_FILE, LAYER, SETTINGS, Refused
from egress import PROXY, forward_proxy
from layer import install, layer_summary
from nodedeps import node_resolve
from pydeps import python_resolve


def configure(request):
    """The request's settings, the way out through the proxy, and the CA bundle to trust."""
    for name in SETTINGS:
        if request.get(name):
            SETTINGS[name] = request[name]
    os.environ["HOME"] = "/tmp"
    os.environ["npm_config_cache"] = "/tmp/.npm"
    os.environ["npm_config_update_notifier"] = "false"
    if request.get("proxy_socket"):
        PROXY["socket"] = request["proxy_socket"]
    if os.path.exists(PROXY["socket"]):
        forward_proxy()
    if request.get("ca_bundle"):
        # the host's trust store, for networks whose proxy intercepts TLS; lock hashes still pin content
        with open(CA_FILE, "w") as fh:
            fh.write(request["ca_bundle"])
        for name in ("SSL_CERT_FILE", "npm_config_cafile", "NODE_EXTRA_CA_CERTS"):
            os.environ[name] = CA_FILE


def answer(request):
    """Do what the request asks; -> the answer (``ok`` true, or false with a readable ``error``)."""
    op, runtime = request["op"], request["runtime"]
    try:
        if op == "resolve" and runtime == "python":
            result = python_resolve(request.get("requirements") or "")
        elif op == "resolve" and runtime == "node":
            result = node_resolve(request.get("dependencies") or {})
        elif op == "install":
            install(runtime, request.get("lock") or "")
            result = layer_summary()
            with open(os.path.join(LAYER, ".complete"), "w") as fh:
                fh.write(request.get("lock_digest", ""))
        else:
            raise Refused(f"unknown request {op!r} for {runtime!r}")
        result["ok"] = True
    except Refused as exc:
        result = {"ok": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - any other failure is reported to the build log and the version
        result = {"ok": False, "error": f"the build failed: {type(exc).__name__}: {exc}"}
    return result


def main():
    request = json.loads(sys.stdin.read())
    configure(request)
    sys.stdout.write(json.dumps(answer(request)) + "\n")


if __name__ == "__main__":
    main()
