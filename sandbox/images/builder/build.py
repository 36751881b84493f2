"""Lambdasite dependency builder: runs inside a builder container, never in a sandbox cell.

It has no network of its own (network ``none``): its only way out is the platform's proxy,
whose Unix socket is mounted at /egress and which tunnels to the package index and registry
only. ``forward_proxy`` offers that socket on a loopback port, and pip, npm and urllib are
pointed at it. It never runs package code: Python installs wheels only (``--only-binary=:all:``: building an
sdist would run its setup code), Node installs with ``--ignore-scripts`` and refuses
any package that declares an install script.

Input: one JSON object on stdin, ``{"op": "resolve" | "install", "runtime": ...}`` with
``requirements`` (Python) or ``dependencies`` (Node) to resolve, or ``lock`` to install
into /layer. Progress goes to stderr (the build log); the answer is the last line of
stdout: ``{"ok": true, ...}`` or ``{"ok": false, "error": "a readable reason"}``.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

LAYER = "/layer"  # the layer's volume: written once, after everything succeeded in the staging area
CA_FILE = "/tmp/ca.crt"
STAGE = "/tmp/stage"  # a size-capped tmpfs: the install happens here, so a huge package cannot fill a disk
DEPS = "/opt/deps"  # where cells mount the layer
WORK = "/tmp/build"
NPM_CLI = ["node", "/opt/npm/bin/npm-cli.js"]
SETTINGS = {
    "index_url": "https://pypi.org/simple",
    "registry": "https://registry.npmjs.org/",
    "max_bytes": 0,
    "max_files": 0,
    "fetch_timeout_s": 60,
}
PROXY = {"url": "", "socket": "/egress/proxy.sock"}  # the url once forward_proxy has started


class Refused(Exception):
    """The dependencies cannot be built; the message says why, for the person who deployed them."""


def log(text):
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def run(command, cwd=None, check=True):
    """Run a tool, its output streamed into the build log; -> (exit code, output)."""
    log("$ " + " ".join(command))
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        log(line)
    code = proc.wait()
    if check and code != 0:
        raise Refused("".join(lines[-20:]).strip() or f"{command[0]} failed with exit code {code}")
    return code, "".join(lines)


# -- the way out ------------------------------------------------------------------------


def forward_proxy():
    """Listen on a loopback port and connect each client to the platform's proxy socket."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve(client):
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(PROXY["socket"])
        except OSError:
            client.close()
            return
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def accept():
        while True:
            client, _ = listener.accept()
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    PROXY["url"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        os.environ[name] = PROXY["url"]
    os.environ.pop("NO_PROXY", None)
    os.environ.pop("no_proxy", None)


# -- Python --------------------------------------------------------------------------


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


def python_resolve(requirements):
    _refuse_options_and_urls(requirements)
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, "requirements.txt")
    with open(path, "w") as fh:
        fh.write(requirements)
    report = os.path.join(WORK, "report.json")
    pip = _pip_install()
    code, output = run(
        pip
        + [
            "--dry-run",
            "--ignore-installed",
            "--only-binary=:all:",
            "--report",
            report,
            "-r",
            path,
        ],
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


def python_install(lock):
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, "lock.txt")
    with open(path, "w") as fh:
        fh.write(lock)
    target = os.path.join(STAGE, "site-packages")
    pip = _pip_install()
    if lock.strip():
        run(
            pip
            + [
                "--only-binary=:all:",
                "--no-deps",
                "--require-hashes",
                "--no-compile",
                "--target",
                target,
                "-r",
                path,
            ]
        )
    else:
        os.makedirs(target, exist_ok=True)
    # compiled now, with the paths the cells see: the layer is read-only at run time
    run([sys.executable, "-m", "compileall", "-q", "-j", "1", "-s", STAGE, "-p", DEPS, target])


# -- Node ------------------------------------------------------------------------------


def npm():
    """npm with the proxy and bounded network waits (the whole step is bounded by the host's timeout)."""
    timeout_ms = str(int(SETTINGS["fetch_timeout_s"] * 1000))
    command = NPM_CLI + ["--fetch-timeout", timeout_ms, "--fetch-retries", "1"]
    command += ["--fetch-retry-maxtimeout", timeout_ms]
    if PROXY["url"]:
        command += ["--proxy", PROXY["url"], "--https-proxy", PROXY["url"], "--noproxy", ""]
    return command


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


def node_resolve(dependencies):
    _refuse_url_dependencies(dependencies, "")
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(WORK, "package.json"), "w") as fh:
        json.dump(
            {
                "name": "lambdasite-function",
                "version": "0.0.0",
                "private": True,
                "dependencies": dependencies,
            },
            fh,
        )
    code, output = run(
        npm()
        + [
            "install",
            "--package-lock-only",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--omit=dev",
            "--registry",
            SETTINGS["registry"],
        ],  # fmt: skip
        cwd=WORK,
        check=False,
    )
    if code != 0:
        missing = re.findall(r"404 Not Found - GET \S+/([^/\s]+)\s", output) or re.findall(
            r"E404.*?'([^']+)'", output
        )
        if missing or "E404" in output:
            name = missing[0] if missing else "a dependency"
            raise Refused(f"{name}: no such package or version on the npm registry")
        refused = re.findall(r"403 Forbidden - GET (\S+)", output)
        if refused:
            raise Refused(
                f"a dependency is fetched from outside the registry ({refused[0]}), which builds cannot "
                "reach. Dependencies, at any depth, must come from the registry"
            )
        if "ETARGET" in output:
            raise Refused("no version of a dependency matches its range:\n" + _npm_errors(output))
        raise Refused(_npm_errors(output) or "the dependencies could not be resolved")
    with open(os.path.join(WORK, "package-lock.json")) as fh:
        lock = json.load(fh)
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
    for path, meta in lock.get("packages", {}).items():
        if not path:
            continue
        for field in ("dependencies", "optionalDependencies", "peerDependencies"):
            _refuse_url_dependencies(meta.get(field), f"{path.split('node_modules/')[-1]} needs ")
        if not meta.get("integrity") or meta.get("link"):
            raise Refused(f"{path}: the registry gave no integrity hash")
        if not str(meta.get("resolved", "")).startswith(SETTINGS["registry"]):
            raise Refused(f"{path}: resolved outside the registry ({meta.get('resolved')})")
    lock.pop("name", None)
    return {
        "lock": json.dumps(lock, sort_keys=True, separators=(",", ":")),
        "packages": len(lock.get("packages", {})) - 1,
    }


def _npm_errors(output):
    lines = [
        line
        for line in output.splitlines()
        if ("ERR!" in line or line.startswith("npm error")) and "complete log of this run" not in line
    ]
    return "\n".join(lines)[-2000:]


def node_install(lock):
    package_lock = json.loads(lock) if lock else {"packages": {"": {}}}
    root = package_lock.get("packages", {}).get("", {})
    package = {
        "name": "lambdasite-function",
        "version": "0.0.0",
        "private": True,
        "dependencies": root.get("dependencies", {}),
    }
    package_lock["name"] = "lambdasite-function"
    os.makedirs(STAGE, exist_ok=True)
    with open(os.path.join(STAGE, "package.json"), "w") as fh:
        json.dump(package, fh)
    with open(os.path.join(STAGE, "package-lock.json"), "w") as fh:
        json.dump(package_lock, fh)
    if package["dependencies"]:
        ci = [
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--omit=dev",
            "--registry",
            SETTINGS["registry"],
        ]
        run(npm() + ci, cwd=STAGE)
    else:
        os.makedirs(os.path.join(STAGE, "node_modules"), exist_ok=True)


# -- the layer --------------------------------------------------------------------------


def tree_size(root):
    """Bytes and entries (files, links and directories) under ``root``."""
    size = entries = 0
    for dirpath, dirnames, names in os.walk(root):
        entries += len(dirnames) + len(names)
        size += sum(os.lstat(os.path.join(dirpath, name)).st_size for name in names)
    return size, entries


def install(runtime, lock):
    """Install into the staging area, check the size cap, then copy into the (empty) layer volume."""
    if os.listdir(LAYER):
        raise Refused("the layer's volume is not empty")
    (python_install if runtime == "python" else node_install)(lock)
    size, entries = tree_size(STAGE)
    cap = SETTINGS["max_bytes"]
    if cap and size > cap:
        raise Refused(
            f"the installed dependencies take {size / 1e6:.1f} MB, over the cap of {cap / 1e6:.1f} MB"
        )
    cap = SETTINGS["max_files"]
    if cap and entries > cap:
        raise Refused(
            f"the installed dependencies hold {entries} files and directories, over the cap of {cap}"
        )
    log(f"installed {size / 1e6:.1f} MB; copying into the layer")
    shutil.copytree(STAGE, LAYER, symlinks=True, dirs_exist_ok=True)


def layer_summary():
    """Size, file count and a digest of the layer's content (paths and bytes, in order)."""
    digest = hashlib.sha256()
    size = files = 0
    for dirpath, dirnames, filenames in os.walk(LAYER):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                digest.update(b"L" + path.encode() + os.readlink(path).encode())
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            digest.update(b"F" + path.encode() + len(data).to_bytes(8, "big") + data)
            size += len(data)
            files += 1
    return {"size_bytes": size, "files": files, "content_sha256": digest.hexdigest()}


def main():
    request = json.loads(sys.stdin.read())
    op, runtime = request["op"], request["runtime"]
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
    try:
        if op == "resolve" and runtime == "python":
            answer = python_resolve(request.get("requirements") or "")
        elif op == "resolve" and runtime == "node":
            answer = node_resolve(request.get("dependencies") or {})
        elif op == "install":
            install(runtime, request.get("lock") or "")
            answer = layer_summary()
            with open(os.path.join(LAYER, ".complete"), "w") as fh:
                fh.write(request.get("lock_digest", ""))
        else:
            raise Refused(f"unknown request {op!r} for {runtime!r}")
        answer["ok"] = True
    except Refused as exc:
        answer = {"ok": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported to the build log and the version
        answer = {"ok": False, "error": f"the build failed: {type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
