"""Runtime images: built from Debian packages, tagged by a hash of their inputs, reused when unchanged.

Where a registry answers, the runtime Dockerfiles start from ``debian:bookworm-slim``.
Where none does (our machines), the base is ``debootstrap --variant=minbase
bookworm`` from the apt mirror, imported with ``docker import``. Either way the
runtime layer is a small ``docker build`` that installs the interpreter with
apt (and Node from the npm registry, sha512-pinned) over the host network;
sandboxes themselves never get a network. The dependency builders are built on
top of the runtime images (``builder-python``: pip; ``builder-node``: npm).
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

IMAGES_DIR = Path(__file__).parent / "images"
SLIM_BASE = "debian:bookworm-slim"
BOOTSTRAP_BASE = "lambdasite/base:bookworm-minbase"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

Log = Callable[[str], None]


# image name -> (its folder, shared files copied into its build context, the image it is built FROM)
IMAGES = {
    "python": ("python", ("runner",), None),
    "node": ("node", ("runner", "fetch.py"), None),
    "builder-python": ("builder-python", ("builder",), "python"),
    "builder-node": ("builder-node", ("builder", "fetch.py"), "node"),
}


def context_files(name: str) -> dict[str, bytes]:
    """The build context of an image: its own folder plus the shared files it uses."""
    if name not in IMAGES:
        raise SandboxError(f"unknown image {name!r}", code="image_missing")
    folder, shared, _ = IMAGES[name]
    files = {}
    for rel in shared:  # a shared file lands at the context's top, a shared folder keeps its name
        path = IMAGES_DIR / rel
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file() and "__pycache__" not in item.parts:
                    files[str(item.relative_to(IMAGES_DIR))] = item.read_bytes()
        else:
            files[path.name] = path.read_bytes()
    for path in sorted((IMAGES_DIR / folder).iterdir()):
        if path.is_file():
            files[path.name] = path.read_bytes()
    return files


def host_ca_bundle() -> bytes:
    """The certificates this machine trusts (public, not secrets), for downloads during builds where
    the network's TLS is intercepted by a proxy with its own CA. Empty when there is none to add."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def inputs_hash(name: str) -> str:
    digest = hashlib.sha256()
    for file_name, data in sorted(context_files(name).items()):
        digest.update(file_name.encode() + b"\0" + hashlib.sha256(data).digest())
    base = IMAGES[name][2]
    if base is not None:
        digest.update(b"FROM\0" + image_tag(base).encode())
    return digest.hexdigest()[:16]


def image_tag(name: str) -> str:
    """The tag an image gets when built from this checkout (a runtime, or ``builder-<runtime>``)."""
    prefix = os.environ.get("SANDBOX_IMAGE_PREFIX", "lambdasite")
    return f"{prefix}/{name}:{inputs_hash(name)}"


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


def build_image(client: docker.DockerClient, name: str, *, force: bool = False, log: Log = print) -> str:
    """Build one image unless an image from the same inputs exists; return its tag."""
    tag = image_tag(name)
    if not force and image_exists(client, tag):
        log(f"{name}: reusing {tag}")
        return tag
    base_name = IMAGES[name][2]
    base = image_tag(base_name) if base_name else ensure_base(client, log)
    log(f"{name}: building {tag} from {base}")
    with tempfile.TemporaryDirectory(prefix=f"lambdasite-{name}-") as ctx:
        for file_name, data in context_files(name).items():
            (Path(ctx) / file_name).parent.mkdir(parents=True, exist_ok=True)
            (Path(ctx) / file_name).write_bytes(data)
        (Path(ctx) / "build-ca.crt").write_bytes(host_ca_bundle())  # not an input: only trusts downloads
        stream = client.api.build(
            path=ctx,
            tag=tag,
            buildargs={"BASE": base},
            network_mode="host",
            rm=True,
            forcerm=True,
            decode=True,
            labels={"lambdasite.image": name, "lambdasite.base": base},
        )
        for chunk in stream:
            if "error" in chunk:
                raise SandboxError(f"building {tag} failed: {chunk['error']}", code="image_missing")
    log(f"{name}: built {tag}")
    return tag


def build_all(client: docker.DockerClient | None = None, *, force: bool = False, log: Log = print) -> dict:
    """Every image, runtimes before the builders made from them."""
    client = client or docker.from_env()
    return {name: build_image(client, name, force=force, log=log) for name in IMAGES}


if __name__ == "__main__":
    build_all()
