"""Who owns a sandbox container, and removing the ones whose owner is gone.

A cell is labelled with the host, pid and start time of the process that made it, and with that
process's own container when it runs in one (compose, Kubernetes on the host's engine)."""

from __future__ import annotations

import logging
import os
import socket

import docker
from docker.errors import APIError, DockerException, NotFound

from .cell import LABEL
from .exceptions import SandboxError

log = logging.getLogger("lambdasite.sandbox")


def _proc_start(pid: int) -> str:
    """Start time of a process (clock ticks since boot), to tell a live owner from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def own_container_id(mountinfo: str = "/proc/self/mountinfo") -> str:
    """The id of the Docker container this process runs in, or "" on a plain host.

    Docker bind-mounts the container's own ``hostname`` file from its directory on the engine's host
    (``.../containers/<64 hex>/hostname``); that path shows in this process's mount table."""
    try:
        with open(mountinfo) as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 4 and fields[4] == "/etc/hostname":
                    parts = fields[3].rstrip("/").split("/")
                    if len(parts) >= 2 and parts[-1] == "hostname" and len(parts[-2]) == 64:
                        candidate = parts[-2]
                        if all(c in "0123456789abcdef" for c in candidate):
                            return candidate
    except OSError:
        pass
    return ""


def owner_labels() -> dict:
    pid = os.getpid()
    labels = {
        "lambdasite.host": socket.gethostname(),
        "lambdasite.pid": str(pid),
        "lambdasite.boot": _proc_start(pid),
    }
    container = own_container_id()
    if container:
        # a worker in a container (compose, Kubernetes with the host's engine): its cells outlive it
        # if the container is killed; any worker on the same engine removes them (sweep_orphans)
        labels["lambdasite.owner-container"] = container
    return labels


def _owner_container_gone(client: docker.DockerClient, container_id: str, cache: dict) -> bool:
    """The worker container that made a cell no longer runs on this engine (killed, stopped, removed)."""
    if container_id not in cache:
        try:
            owner = client.containers.get(container_id)
            cache[container_id] = owner.status not in ("running", "restarting", "paused")
        except NotFound:
            cache[container_id] = True
        except (APIError, DockerException):
            cache[container_id] = False  # unknown: keep the cell, the next sweep asks again
    return cache[container_id]


def sweep_orphans(client: docker.DockerClient, *, everything_on_host: bool = False) -> list[str]:
    """Remove sandbox containers whose owning process is gone (or all of this host's, at host start).

    A cell made on this host belongs to a process whose pid and start time are on its labels. A cell
    made by a worker running in another container on this engine belongs to that container: it is
    removed once that container no longer runs (a restarted container's cells fall to its own sweep,
    which has the same host name)."""
    host = socket.gethostname()
    removed = []
    try:
        # the list's own rows (id, labels): inspecting each would race with cells being removed
        rows = client.api.containers(all=True, filters={"label": [f"{LABEL}=1", f"lambdasite.host={host}"]})
        rows += [
            row
            for row in client.api.containers(
                all=True, filters={"label": [f"{LABEL}=1", "lambdasite.owner-container"]}
            )
            if (row.get("Labels") or {}).get("lambdasite.host") != host
        ]
    except (APIError, DockerException) as exc:
        raise SandboxError(f"listing sandbox containers failed: {exc}", code="engine_unavailable") from exc
    owners: dict[str, bool] = {}
    for row in rows:
        labels = row.get("Labels") or {}
        if labels.get("lambdasite.host") != host:
            alive = not _owner_container_gone(client, labels["lambdasite.owner-container"], owners)
        else:
            pid = int(labels.get("lambdasite.pid", "0") or 0)
            alive = pid > 0 and _proc_start(pid) == labels.get("lambdasite.boot")
        if (everything_on_host and labels.get("lambdasite.host") == host) or not alive:
            try:
                client.api.remove_container(row["Id"], force=True)
                removed.append(row["Id"])
            except NotFound:
                pass
            except (APIError, DockerException) as exc:
                log.warning("could not remove orphan %s: %s", row["Id"][:12], exc)
    return removed
