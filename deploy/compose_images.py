"""Images for the compose stack, built on this machine when no registry answers.

    .venv/bin/python deploy/compose_images.py            # prints KEY=value lines for compose
    eval "$(.venv/bin/python deploy/compose_images.py)" && docker-compose up -d

* The app (``Dockerfile``): from ``python:3.11-slim-bookworm`` where it can be pulled, else from the
  project's Debian base (the runtime images' base; ``debootstrap`` where no registry answers) with
  Debian's Python 3.11. The build context is the checkout as ``.dockerignore`` shapes it, plus the
  machine's CA bundle for pip where TLS is intercepted (not copied into the final image).
* PostgreSQL and Redis: ``postgres:15`` and ``redis:7`` where they can be pulled, else images from
  Debian's ``postgresql-15`` and ``redis-server`` packages (``deploy/images``).

Prints ``APP_IMAGE``, ``POSTGRES_IMAGE`` and ``REDIS_IMAGE`` for ``compose.yaml``. The docker build
cache makes a rebuild with unchanged requirements take seconds.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402
from docker.errors import APIError, DockerException  # noqa: E402
from docker.utils.build import exclude_paths  # noqa: E402

from sandbox import images  # noqa: E402

APP_IMAGE = "lambdasite/app:latest"
PYTHON_IMAGE = "python:3.11-slim-bookworm"
SERVICES = {  # service -> (the registry's image, the local fallback's tag, its folder)
    "POSTGRES_IMAGE": ("postgres:15", "lambdasite/postgres:15-bookworm", "postgres"),
    "REDIS_IMAGE": ("redis:7", "lambdasite/redis:7-bookworm", "redis"),
}


def log(msg: str) -> None:
    print(f"[compose-images] {msg}", file=sys.stderr, flush=True)


def pulled(client: docker.DockerClient, ref: str) -> bool:
    """The image is here, or a registry gave it now."""
    if images.image_exists(client, ref):
        return True
    try:
        client.images.pull(ref)
        return True
    except (APIError, DockerException) as exc:
        log(f"{ref}: cannot pull ({str(exc).splitlines()[0][:100]})")
        return False


def _build(client: docker.DockerClient, context: io.BytesIO, tag: str, base: str) -> None:
    try:
        previous = client.images.get(tag).id
    except (APIError, DockerException):
        previous = None
    context.seek(0)
    stream = client.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        buildargs={"BASE_IMAGE": base},
        network_mode="host",  # downloads during the build only: the engine here has no bridge
        rm=True,
        forcerm=True,
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            raise SystemExit(f"building {tag} failed: {chunk['error']}")
        text = chunk.get("stream", "").strip()
        if text.startswith("Step "):
            log(f"{tag}: {text[:110]}")
    if previous and previous != client.images.get(tag).id:
        try:  # the image this tag named before is left with no name: do not let rebuilds pile up
            client.images.remove(previous, noprune=False)
        except (APIError, DockerException):
            pass  # still used by a container, or a parent of another image


def context_of(folder: Path, extra: dict[str, bytes]) -> io.BytesIO:
    """A tar of ``folder`` without what its .dockerignore excludes, plus ``extra`` files."""
    ignore = folder / ".dockerignore"
    patterns = [
        line.strip()
        for line in (ignore.read_text().splitlines() if ignore.exists() else [])
        if line.strip() and not line.startswith("#")
    ]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for rel in sorted(exclude_paths(str(folder), patterns)):
            path = folder / rel
            if path.is_file() and not path.is_symlink():
                tar.add(str(path), arcname=rel, recursive=False)
        for name, data in extra.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out


def build_all(client: docker.DockerClient) -> dict[str, str]:
    base = None
    chosen = {}
    if pulled(client, PYTHON_IMAGE):
        app_base = PYTHON_IMAGE
    else:
        base = images.ensure_base(client, log)
        app_base = base
    log(f"app: building {APP_IMAGE} from {app_base}")
    _build(client, context_of(ROOT, {"build-ca.crt": images.host_ca_bundle()}), APP_IMAGE, app_base)
    chosen["APP_IMAGE"] = APP_IMAGE
    for key, (upstream, local, folder) in SERVICES.items():
        if pulled(client, upstream):
            chosen[key] = upstream
            continue
        base = base or images.ensure_base(client, log)
        log(f"{key}: building {local} from {base} (Debian's packages)")
        _build(client, context_of(ROOT / "deploy" / "images" / folder, {}), local, base)
        chosen[key] = local
    return chosen


def main() -> int:
    try:
        client = docker.from_env()
        chosen = build_all(client)
    except DockerException as exc:
        log(f"no Docker engine answers: {exc}")
        return 1
    for key, value in chosen.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
