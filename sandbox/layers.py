"""Dependency layers: a function's third-party packages, resolved to a lock and installed once into a
Docker volume named by runtime + lock, mounted read-only at ``/opt/deps`` in the function's cells.

Both steps run ``sandbox/images/builder/`` (``build.py`` and its steps) in a builder container
(``builder-python``: pip; ``builder-node``: npm). A builder has network ``none`` like a cell; its
only way out is ``sandbox.buildproxy``, a proxy on a Unix socket (mounted at ``/egress``) that
tunnels to the configured package indexes and refuses every other host and port, so a dependency
at any depth cannot make a builder reach the host, its network or a metadata service. It never
runs package code (wheels only; npm with ``--ignore-scripts``, refusing packages that declare
install scripts or that resolve anywhere but the registry), runs as an
unprivileged user with every capability dropped, a read-only root, and limits on
time, memory, processes and the size of what it installs (it installs into a
size-capped tmpfs and copies into the volume only once everything succeeded).
Its stderr is the build log, streamed line by line to ``on_log``.

Plain Python, no Django: the functions app records layers and decides which to keep.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig

from . import protocol
from .buildproxy import SOCKET_NAME, BuildProxy, allowed_targets
from .exceptions import SandboxError
from .images import host_ca_bundle, image_tag
from .sweep import owner_labels

LABEL = "lambdasite.layer"
BUILDER_LABEL = "lambdasite.builder"
MAX_ANSWER_BYTES = 16 << 20
OnLog = Callable[[str], None]


class BuildFailed(Exception):
    """The dependencies cannot be built; the message says why, for the person who deployed them."""


@dataclass(frozen=True)
class BuildLimits:
    timeout_s: float = 600.0
    memory_mb: int = 1024
    tmp_mb: int = 2048  # the staging tmpfs: what an install may occupy before it is copied
    pids: int = 256
    cpus: float = 1.0
    index_url: str = "https://pypi.org/simple"
    npm_registry: str = "https://registry.npmjs.org/"
    proxy_dir: str = ""  # where this process makes each build's proxy socket directory ("" = the temp dir)
    # how the Docker engine sees proxy_dir when this process runs in a container: a named volume mounted
    # there (compose), or the host path of the same directory (Kubernetes: the pod's emptyDir); neither:
    # the same path (a worker on the host)
    proxy_volume: str = ""
    proxy_host_dir: str = ""
    fetch_timeout_s: float = 60.0  # pip's and npm's per-request network timeout


@dataclass(frozen=True)
class Resolved:
    lock: str
    packages: int


@dataclass(frozen=True)
class Installed:
    volume: str
    size_bytes: int
    files: int
    content_sha256: str


def lock_digest(runtime: str, lock: str) -> str:
    """What names a layer: the runtime and the exact lock (every package, version and hash)."""
    return hashlib.sha256(f"{runtime}\0{lock}".encode()).hexdigest()


def volume_name(runtime: str, digest: str) -> str:
    """A fresh name for each install: a volume left by an earlier install of the same lock (still
    mounted by a cell, say) is never written to again, only removed once unused."""
    return f"lambdasite-layer-{runtime}-{digest[:24]}-{uuid.uuid4().hex[:8]}"


def resolve(
    client: docker.DockerClient, runtime: str, spec, *, on_log: OnLog, limits: BuildLimits
) -> Resolved:
    """Exact versions and hashes for ``spec`` (Python: requirements text; Node: a dependencies object)."""
    request = {"op": "resolve", "runtime": runtime}
    request["requirements" if runtime == "python" else "dependencies"] = spec
    answer = _run_builder(client, runtime, request, on_log=on_log, limits=limits)
    return Resolved(lock=str(answer.get("lock") or ""), packages=int(answer.get("packages") or 0))


def install(
    client: docker.DockerClient,
    runtime: str,
    lock: str,
    *,
    max_bytes: int,
    max_files: int = 0,
    on_log: OnLog,
    limits: BuildLimits,
) -> Installed:
    """Install a lock into a new volume; any failure removes the volume, so no half-built layer is left."""
    volume = volume_name(runtime, lock_digest(runtime, lock))
    try:
        client.volumes.create(
            name=volume,
            labels={LABEL: "1", "lambdasite.runtime": runtime, "lambdasite.lock": lock_digest(runtime, lock)},
        )
    except (APIError, DockerException) as exc:
        raise SandboxError(f"could not create the layer volume: {exc}", code="engine_unavailable") from exc
    request = {
        "op": "install",
        "runtime": runtime,
        "lock": lock,
        "lock_digest": lock_digest(runtime, lock),
        "max_bytes": max_bytes,
        "max_files": max_files,
    }
    try:
        answer = _run_builder(client, runtime, request, on_log=on_log, limits=limits, volume=volume)
    except BaseException:
        remove(client, volume)
        raise
    return Installed(
        volume=volume,
        size_bytes=int(answer.get("size_bytes") or 0),
        files=int(answer.get("files") or 0),
        content_sha256=str(answer.get("content_sha256") or ""),
    )


def exists(client: docker.DockerClient, volume: str) -> bool:
    try:
        client.volumes.get(volume)
        return True
    except NotFound:
        return False


def remove(client: docker.DockerClient, volume: str) -> bool:
    """Remove a layer's volume; False if a cell still has it mounted (it is removed on a later pass)."""
    try:
        client.volumes.get(volume).remove(force=False)
        return True
    except NotFound:
        return True
    except (APIError, DockerException):
        return False


def volumes(client: docker.DockerClient) -> dict[str, float]:
    """Every layer volume on the engine, with its age in seconds."""
    try:
        found = client.volumes.list(filters={"label": f"{LABEL}=1"})
    except (APIError, DockerException) as exc:
        raise SandboxError(f"listing layer volumes failed: {exc}", code="engine_unavailable") from exc
    now = datetime.now(UTC)
    ages = {}
    for volume in found:
        try:
            created = datetime.fromisoformat(volume.attrs.get("CreatedAt", "").replace("Z", "+00:00"))
            ages[volume.name] = (now - created).total_seconds()
        except ValueError:
            ages[volume.name] = 0.0
    return ages


def _create_builder(
    client: docker.DockerClient, runtime: str, limits: BuildLimits, volume: str | None, egress: str
) -> str:
    """Create a builder container (the low-level API: stdin_once closes its stdin when ours ends)."""
    mb = 1024 * 1024
    binds = {egress: {"bind": "/egress", "mode": "ro"}}
    if volume:
        binds[volume] = {"bind": "/layer", "mode": "rw"}
    host_config = client.api.create_host_config(
        network_mode="none",  # no interface but loopback: the proxy's socket is the only way out
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_mb}m,mode=1777"},
        binds=binds,
        mem_limit=limits.memory_mb * mb,
        memswap_limit=limits.memory_mb * mb,
        nano_cpus=int(limits.cpus * 1e9),
        pids_limit=limits.pids,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        log_config=LogConfig(type="none"),
    )
    created = client.api.create_container(
        image=image_tag(f"builder-{runtime}"),
        user="10001:10001",
        stdin_open=True,  # with detach=False this sets StdinOnce too
        detach=False,
        tty=False,
        environment={"HOME": "/tmp"},
        labels={BUILDER_LABEL: "1", "lambdasite.sandbox": "1", **owner_labels()},
        volumes=["/egress", "/layer"] if volume else ["/egress"],
        host_config=host_config,
    )
    return created["Id"]


def proxy_mount(limits: BuildLimits, directory: str) -> tuple[str, str]:
    """(what the engine mounts at /egress in the builder, the socket's path in the builder)."""
    name = os.path.basename(directory)
    if limits.proxy_volume:  # the whole volume: every build's directory in it, each socket apart
        return limits.proxy_volume, f"/egress/{name}/{SOCKET_NAME}"
    if limits.proxy_host_dir:
        return os.path.join(limits.proxy_host_dir, name), f"/egress/{SOCKET_NAME}"
    return directory, f"/egress/{SOCKET_NAME}"


def _run_builder(
    client: docker.DockerClient,
    runtime: str,
    request: dict,
    *,
    on_log: OnLog,
    limits: BuildLimits,
    volume: str | None = None,
) -> dict:
    request = {
        **request,
        "index_url": limits.index_url,
        "registry": limits.npm_registry,
        "fetch_timeout_s": limits.fetch_timeout_s,
        "ca_bundle": host_ca_bundle().decode("ascii", "replace"),
    }
    proxy = BuildProxy(
        allowed_targets([limits.index_url, limits.npm_registry]), base_dir=limits.proxy_dir or None
    )
    egress, request["proxy_socket"] = proxy_mount(limits, proxy.directory)
    try:
        return _run_builder_through(
            client, runtime, request, on_log=on_log, limits=limits, volume=volume, egress=egress
        )
    finally:
        proxy.close()


def _run_builder_through(
    client: docker.DockerClient,
    runtime: str,
    request: dict,
    *,
    on_log: OnLog,
    limits: BuildLimits,
    volume: str | None,
    egress: str,
) -> dict:
    try:
        container_id = _create_builder(client, runtime, limits, volume, egress)
    except ImageNotFound as exc:
        raise SandboxError(
            f"builder image for {runtime} is missing: run `python manage.py sandbox_build`",
            code="image_missing",
        ) from exc
    except (APIError, DockerException) as exc:
        raise SandboxError(f"could not start a builder: {exc}", code="engine_unavailable") from exc
    try:
        raw = client.api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        sock = getattr(raw, "_sock", raw)
        client.api.start(container_id)
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)  # stdin_once: the builder reads to EOF
        stdout = _stream(sock, on_log, time.monotonic() + limits.timeout_s)
    except TimeoutError:
        raise BuildFailed(f"the build took longer than {limits.timeout_s:.0f} s and was stopped") from None
    except OSError as exc:
        raise SandboxError(f"lost the builder's stream: {exc}", code="cell_failed") from exc
    finally:
        try:
            client.api.remove_container(container_id, force=True)
        except (APIError, DockerException):
            pass  # the orphan sweeper finds it by label
    answer = _answer(stdout)
    if answer is None:
        raise BuildFailed("the builder stopped without an answer (out of memory or time?)")
    if not answer.get("ok"):
        raise BuildFailed(str(answer.get("error") or "the build failed"))
    return answer


def _stream(sock, on_log: OnLog, deadline: float) -> bytes:
    """Read the builder's output until it ends: stderr lines go to ``on_log``, stdout is returned."""
    demux = protocol.DockerDemux()
    stdout = bytearray()
    partial = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        data = sock.recv(65536)
        if not data:
            break
        out, err = demux.feed(data)
        if len(stdout) < MAX_ANSWER_BYTES:
            stdout += out
        partial += err
        *lines, rest = partial.split(b"\n")
        partial = bytearray(rest[-65536:])
        for line in lines:
            on_log(line.decode("utf-8", "replace").rstrip("\r"))
    if partial:
        on_log(partial.decode("utf-8", "replace"))
    return bytes(stdout)


def _answer(stdout: bytes) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.strip():
            try:
                answer = json.loads(line)
            except ValueError:
                return None
            return answer if isinstance(answer, dict) else None
    return None
