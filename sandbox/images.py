"""Runtime images: built from Debian packages, tagged by a hash of their inputs, reused when unchanged.

Where a registry answers, the Dockerfiles start from ``debian:bookworm-slim``.
Where none does (our machines), the base is ``debootstrap --variant=minbase
bookworm`` from the apt mirror, imported with ``docker import``. Either way the
runtime layer is a small ``docker build`` that installs the interpreter with
apt over the host network (sandboxes themselves never get a network).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from .exceptions import SandboxError
from .spec import RUNTIMES

IMAGES_DIR = Path(__file__).parent / "images"
SLIM_BASE = "debian:bookworm-slim"
BOOTSTRAP_BASE = "lambdasite/base:bookworm-minbase"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

Log = Callable[[str], None]


def context_files(runtime: str) -> dict[str, bytes]:
    """The build context of a runtime image: its Dockerfile plus the shared runner."""
    if runtime not in RUNTIMES:
        raise SandboxError(f"unknown runtime {runtime!r}", code="image_missing")
    files = {"runner.py": (IMAGES_DIR / "runner.py").read_bytes()}
    for path in sorted((IMAGES_DIR / runtime).iterdir()):
        if path.is_file():
            files[path.name] = path.read_bytes()
    return files


def inputs_hash(runtime: str) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(context_files(runtime).items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


def image_tag(runtime: str) -> str:
    """The tag a runtime's image has when built from the files in this checkout."""
    prefix = os.environ.get("SANDBOX_IMAGE_PREFIX", "lambdasite")
    return f"{prefix}/{runtime}:{inputs_hash(runtime)}"


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def ensure_base(client: docker.DockerClient, log: Log = print) -> str:
    """Return a usable Debian bookworm base image, building one if needed."""
    wanted = os.environ.get("SANDBOX_BASE_IMAGE", "").strip()
    if wanted:
        if not image_exists(client, wanted):
            log(f"pulling {wanted}")
            client.images.pull(wanted)
        return wanted
    for candidate in (SLIM_BASE, BOOTSTRAP_BASE):
        if image_exists(client, candidate):
            return candidate
    try:
        log(f"pulling {SLIM_BASE}")
        client.images.pull(SLIM_BASE)
        return SLIM_BASE
    except (APIError, DockerException) as exc:
        log(f"no registry ({str(exc).splitlines()[0][:120]}); building the base with debootstrap")
    return bootstrap_base(client, log)


def bootstrap_base(client: docker.DockerClient, log: Log = print) -> str:
    if shutil.which("debootstrap") is None:
        raise SandboxError(
            "debootstrap is not installed (apt-get install debootstrap) and no registry answers",
            code="image_missing",
        )
    mirror = os.environ.get("SANDBOX_DEBIAN_MIRROR", DEFAULT_MIRROR)
    with tempfile.TemporaryDirectory(prefix="lambdasite-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap --variant=minbase bookworm from {mirror} (about a minute)")
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # keep the image small: package caches and docs are not needed at run time
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(rootfs / sub, ignore_errors=True)
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        repo, tag = BOOTSTRAP_BASE.split(":")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)
    log(f"imported {BOOTSTRAP_BASE}")
    return BOOTSTRAP_BASE


def build_runtime(client: docker.DockerClient, runtime: str, *, force: bool = False, log: Log = print) -> str:
    """Build one runtime image unless an image from the same inputs exists; return its tag."""
    tag = image_tag(runtime)
    if not force and image_exists(client, tag):
        log(f"{runtime}: reusing {tag}")
        return tag
    base = ensure_base(client, log)
    log(f"{runtime}: building {tag} from {base}")
    with tempfile.TemporaryDirectory(prefix=f"lambdasite-{runtime}-") as ctx:
        for name, data in context_files(runtime).items():
            (Path(ctx) / name).write_bytes(data)
        stream = client.api.build(
            path=ctx,
            tag=tag,
            buildargs={"BASE": base},
            network_mode="host",
            rm=True,
            forcerm=True,
            decode=True,
            labels={"lambdasite.runtime": runtime, "lambdasite.base": base},
        )
        for chunk in stream:
            if "error" in chunk:
                raise SandboxError(f"building {tag} failed: {chunk['error']}", code="image_missing")
    log(f"{runtime}: built {tag}")
    return tag


def build_all(client: docker.DockerClient | None = None, *, force: bool = False, log: Log = print) -> dict:
    client = client or docker.from_env()
    return {runtime: build_runtime(client, runtime, force=force, log=log) for runtime in RUNTIMES}


if __name__ == "__main__":
    build_all()
