"""Python dependencies: resolved to a lock of exact versions and wheel hashes, installed from it with pip.

Wheels only (``--only-binary=:all:``): building an sdist would run its setup code."""

import json
import os
import re
import sys
import urllib.error
import urllib.request

from buildenv import CA_FILE, DEPS, SETTINGS, STAGE, WORK, Refused, run, write_file
from egress import PROXY


def python_resolve(requirements):
    _refuse_options_and_urls(requirements)
    path = write_file(WORK, "requirements.txt", requirements)
    report = os.path.join(WORK, "report.json")
    pip = _pip_install()
    code, output = run(
        pip + ["--dry-run", "--ignore-installed", "--only-binary=:all:", "--report", report, "-r", path],
        check=False,
    )
    if code != 0:
        raise Refused(_why_python_failed(pip, requirements, output))
    with open(report) as fh:
        items = json.load(fh)["install"]
    lines = []
    for item in items:
        meta, info = item["metadata"], item["download_info"]
        digest = (info.get("archive_info") or {}).get("hashes", {}).get("sha256")
        if not digest:
            raise Refused(f"{meta['name']}: the index gave no sha256 for its wheel")
        lines.append(f"{meta['name'].lower()}=={meta['version']} --hash=sha256:{digest}")
    return {"lock": "\n".join(sorted(lines)) + "\n" if lines else "", "packages": len(lines)}


def python_install(lock):
    path = write_file(WORK, "lock.txt", lock)
    target = os.path.join(STAGE, "site-packages")
    if lock.strip():
        only_the_lock = ["--only-binary=:all:", "--no-deps", "--require-hashes", "--no-compile"]
        run(_pip_install() + only_the_lock + ["--target", target, "-r", path])
    else:
        os.makedirs(target, exist_ok=True)
    # compiled now, with the paths the cells see: the layer is read-only at run time
    run([sys.executable, "-m", "compileall", "-q", "-j", "1", "-s", STAGE, "-p", DEPS, target])


def _requirement_names(text):
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if match:
            names.append(line)
    return names


def _refuse_options_and_urls(requirements):
    """Only names and version specifiers: an option (--index-url, -e, -r) or a URL would make pip
    fetch from somewhere else than the index (the proxy would refuse it anyway), and pip expands
    ``${VAR}`` in a requirements file from the environment."""
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and (
            line.startswith("-")
            or "://" in line
            or "@" in line
            or "$" in line
            or "\\" in line
            or line.startswith((".", "/"))
        ):
            raise Refused(f"{line}: only package names with version specifiers are allowed")


def _pip_install():
    """``pip install`` with no configuration but ours: the index we were given, the CA we were given."""
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--isolated",
        "--no-input",
        "--disable-pip-version-check",
        "--no-cache-dir",
    ]
    if os.path.exists(CA_FILE):
        pip += ["--cert", CA_FILE]  # --isolated ignores PIP_CERT
    if PROXY["url"]:
        pip += ["--proxy", PROXY["url"]]
    pip += ["--timeout", str(int(SETTINGS["fetch_timeout_s"])), "--retries", "2"]
    return pip + ["install", "--index-url", SETTINGS["index_url"]]


def _why_python_failed(pip, requirements, output):
    """A readable reason: no wheel (source only), no such package or version, or the resolver's words.

    Asked of the index's JSON API, never by letting pip look at an sdist: preparing an sdist's
    metadata runs its build code."""
    for line in _requirement_names(requirements):
        code, _ = run(
            pip + ["--dry-run", "--ignore-installed", "--no-deps", "--only-binary=:all:", line],
            check=False,
        )
        if code != 0:
            return _index_says(line)
    tail = [entry for entry in output.splitlines() if entry.startswith("ERROR")]
    return "\n".join(tail[-5:]) or "the requirements could not be resolved"


def _index_says(line):
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        return f"{line}: not a valid requirement ({exc})"
    if not SETTINGS["index_url"].startswith("https://pypi.org/"):
        return f"{line}: no wheel of a matching version could be found on the package index"
    try:
        url = f"https://pypi.org/pypi/{requirement.name}/json"
        with urllib.request.urlopen(url, timeout=SETTINGS["fetch_timeout_s"]) as response:
            releases = json.load(response).get("releases", {})
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return f"{requirement.name}: no such package on the package index"
        return f"{line}: no wheel could be found (the index answered {exc.code})"
    except OSError:
        return f"{line}: no wheel could be found"
    matching = [v for v in releases if requirement.specifier.contains(v, prereleases=True) and releases[v]]
    if not matching:
        return f"{line}: no published version of {requirement.name} matches"
    if not any(f.get("packagetype") == "bdist_wheel" for v in matching for f in releases[v]):
        return (
            f"{line}: only a source distribution (sdist) is published. Builds install wheels only, "
            "because building an sdist runs the package's own code."
        )
    return f"{line}: wheels are published, but none for Python 3.11 on Linux {os.uname().machine}"
