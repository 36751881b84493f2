"""A cell's door: a directory holding a listening Unix socket, mounted into that cell only. The
socket is the caller's identity (nothing the job sends names it), so the directory belongs to the
cell's runner, and the doors a dead worker left behind are swept away."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Callable

from ..exceptions import SandboxError
from .accounting import Binding

DOOR_MOUNT = "/run/lambdasite/egress"  # where a cell sees its door's directory
SOCKET_NAME = "proxy.sock"
MAX_SOCKET_PATH = 107  # bytes of a Unix socket's path (sun_path, with its NUL)


class Door:
    """A cell's door: a directory holding the socket, mounted into that cell only."""

    def __init__(self, proxy, name: str, directory: str, mount_source: str, accept: Callable) -> None:
        self.proxy, self.name = proxy, name  # the EgressProxy that opened it (and closes it)
        self.directory = directory
        self.mount_source = mount_source  # what the engine binds at DOOR_MOUNT
        self.path = os.path.join(directory, SOCKET_NAME)
        self.binding: Binding | None = None
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.open = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=accept, args=(self,), name=f"egress-{name}", daemon=True)

    @property
    def mount(self) -> dict:
        """The engine's ``volumes`` entry for this door."""
        return {self.mount_source: {"bind": DOOR_MOUNT, "mode": "ro"}}

    def remove(self) -> None:
        """Stop listening, wait for the accepting thread, and remove the directory."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.listener.close()
        self.thread.join(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)


def door_make(
    proxy, *, name: str, directory: str, host_directory: str, uid: int | None, accept: Callable
) -> Door:
    """A door for cell ``name`` under ``directory``: its own directory (owned by ``uid``, the cell's
    runner, when this process may chown) and a listening socket nobody is bound to yet."""
    own = os.path.join(directory, name)
    if len(os.path.join(own, SOCKET_NAME).encode()) > MAX_SOCKET_PATH:
        raise SandboxError(f"EGRESS_DIR {directory} is too long for a socket path", code="egress_unavailable")
    os.mkdir(own, 0o700)
    mount_source = os.path.join(host_directory, name) if host_directory else own
    try:
        door = Door(proxy, name, own, mount_source, accept)
    except OSError:
        shutil.rmtree(own, ignore_errors=True)
        raise
    try:
        if uid is None:
            raise PermissionError
        os.chown(door.path, uid, uid)
        os.chmod(door.path, 0o600)
        os.chown(own, uid, uid)
    except (PermissionError, OverflowError):
        os.chmod(own, 0o755)  # not root: only this cell mounts the directory anyway
        os.chmod(door.path, 0o666)
    return door


def doors_sweep(directory: str) -> None:
    """Remove the doors a dead worker left in ``directory`` (nothing listens on their sockets);
    another live worker's doors sharing it answer and are kept."""
    for name in os.listdir(directory):
        path = os.path.join(directory, name, SOCKET_NAME)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
        except OSError:
            pass
        finally:
            probe.close()
