"""What every step of a build shares: the request's settings, the paths, the ``Refused`` error, the build
log and the one way to run a tool (pip, npm, compileall)."""

import json
import os
import subprocess
import sys

LAYER = "/layer"  # the layer's volume: written once, after everything succeeded in the staging area
CA_FILE = "/tmp/ca.crt"
STAGE = "/tmp/stage"  # a size-capped tmpfs: the install happens here, so a huge package cannot fill a disk
DEPS = "/opt/deps"  # where cells mount the layer
WORK = "/tmp/build"
SETTINGS = {  # the request's values replace these (build.main)
    "index_url": "https://pypi.org/simple",
    "registry": "https://registry.npmjs.org/",
    "max_bytes": 0,
    "max_files": 0,
    "fetch_timeout_s": 60,
}


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


def write_file(folder, name, content):
    """Write ``content`` (text, or an object written as JSON) to ``folder/name``; -> the path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w") as fh:
        if isinstance(content, str):
            fh.write(content)
        else:
            json.dump(content, fh)
    return path
