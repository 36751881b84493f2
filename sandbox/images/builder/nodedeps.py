"""Node dependencies: resolved to a package-lock from the registry, installed from it with ``npm ci``.

npm always runs with ``--ignore-scripts``, and a package that declares an install script is refused
(it may not work without it); so is any dependency, at any depth, that does not come from the registry."""

import json
import os
import re

from buildenv import SETTINGS, STAGE, WORK, Refused, run, write_file
from egress import PROXY

NPM_CLI = ["node", "/opt/npm/bin/npm-cli.js"]
PACKAGE = {"name": "lambdasite-function", "version": "0.0.0", "private": True}


def npm():
    """npm with the proxy and bounded network waits (the whole step is bounded by the host's timeout)."""
    timeout_ms = str(int(SETTINGS["fetch_timeout_s"] * 1000))
    command = NPM_CLI + ["--fetch-timeout", timeout_ms, "--fetch-retries", "1"]
    command += ["--fetch-retry-maxtimeout", timeout_ms]
    if PROXY["url"]:
        command += ["--proxy", PROXY["url"], "--https-proxy", PROXY["url"], "--noproxy", ""]
    return command


def _npm_registry_only(command, *options):
    """An npm command that runs no package code and fetches from the registry only."""
    safe = ["--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev", "--registry", SETTINGS["registry"]]
    return npm() + [command, *options, *safe]


def node_resolve(dependencies):
    _refuse_url_dependencies(dependencies, "")
    write_file(WORK, "package.json", {**PACKAGE, "dependencies": dependencies})
    code, output = run(_npm_registry_only("install", "--package-lock-only"), cwd=WORK, check=False)
    if code != 0:
        raise Refused(_why_npm_failed(output))
    with open(os.path.join(WORK, "package-lock.json")) as fh:
        lock = json.load(fh)
    _refuse_install_scripts(lock)
    _refuse_outside_the_registry(lock)
    lock.pop("name", None)
    return {
        "lock": json.dumps(lock, sort_keys=True, separators=(",", ":")),
        "packages": len(lock.get("packages", {})) - 1,
    }


def node_install(lock):
    package_lock = json.loads(lock) if lock else {"packages": {"": {}}}
    root = package_lock.get("packages", {}).get("", {})
    package = {**PACKAGE, "dependencies": root.get("dependencies", {})}
    package_lock["name"] = "lambdasite-function"
    write_file(STAGE, "package.json", package)
    write_file(STAGE, "package-lock.json", package_lock)
    if package["dependencies"]:
        run(_npm_registry_only("ci"), cwd=STAGE)
    else:
        os.makedirs(os.path.join(STAGE, "node_modules"), exist_ok=True)


def _refuse_url_dependencies(dependencies, where):
    """A dependency given as a URL, a git/GitHub reference, a path or an alias is refused, at any depth."""
    for name, spec in (dependencies or {}).items():
        text = str(spec)
        if (
            ":" in text  # http:, https:, git:, git+ssh:, file:, npm:, github:, link:, workspace:
            or "/" in text  # user/repo (GitHub shorthand) or a path
            or text.startswith((".", "~"))
        ):
            raise Refused(
                f"{where}{name}: {text!r} is not a version range. Dependencies, at any depth, must come "
                "from the registry"
            )


def _why_npm_failed(output):
    """A readable reason from npm's output: no such package, a fetch outside the registry, no match."""
    missing = re.findall(r"404 Not Found - GET \S+/([^/\s]+)\s", output) or re.findall(
        r"E404.*?'([^']+)'", output
    )
    if missing or "E404" in output:
        name = missing[0] if missing else "a dependency"
        return f"{name}: no such package or version on the npm registry"
    refused = re.findall(r"403 Forbidden - GET (\S+)", output)
    if refused:
        return (
            f"a dependency is fetched from outside the registry ({refused[0]}), which builds cannot "
            "reach. Dependencies, at any depth, must come from the registry"
        )
    if "ETARGET" in output:
        return "no version of a dependency matches its range:\n" + _npm_errors(output)
    return _npm_errors(output) or "the dependencies could not be resolved"


def _npm_errors(output):
    lines = [
        line
        for line in output.splitlines()
        if ("ERR!" in line or line.startswith("npm error")) and "complete log of this run" not in line
    ]
    return "\n".join(lines)[-2000:]


def _refuse_install_scripts(lock):
    scripted = sorted(
        f"{path.split('node_modules/')[-1]}@{meta.get('version')}"
        for path, meta in lock.get("packages", {}).items()
        if path and meta.get("hasInstallScript")
    )
    if scripted:
        raise Refused(
            f"{', '.join(scripted)} declare{'s' if len(scripted) == 1 else ''} an install script. "
            "Builds never run package code, and such a package may not work without it, "
            "so it cannot be installed."
        )


def _refuse_outside_the_registry(lock):
    """Every package of the lock: its own dependencies are version ranges, it has an integrity hash and
    it was resolved from the registry."""
    for path, meta in lock.get("packages", {}).items():
        if not path:
            continue
        for field in ("dependencies", "optionalDependencies", "peerDependencies"):
            _refuse_url_dependencies(meta.get(field), f"{path.split('node_modules/')[-1]} needs ")
        if not meta.get("integrity") or meta.get("link"):
            raise Refused(f"{path}: the registry gave no integrity hash")
        if not str(meta.get("resolved", "")).startswith(SETTINGS["registry"]):
            raise Refused(f"{path}: resolved outside the registry ({meta.get('resolved')})")
