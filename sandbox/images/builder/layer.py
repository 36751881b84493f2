"""The layer: the staged install checked against the size caps and copied into the (empty) volume, then
summed up (size, files, a digest of its content) for the host."""

import hashlib
import os
import shutil

from buildenv import LAYER, SETTINGS, STAGE, Refused, log
from nodedeps import node_install
from pydeps import python_install


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


def tree_size(root):
    """Bytes and entries (files, links and directories) under ``root``."""
    size = entries = 0
    for dirpath, dirnames, names in os.walk(root):
        entries += len(dirnames) + len(names)
        size += sum(os.lstat(os.path.join(dirpath, name)).st_size for name in names)
    return size, entries


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
