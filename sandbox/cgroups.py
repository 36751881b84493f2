"""A cell's CPU time, read from its cgroup: how the pool sees tenant code that runs between jobs.

A cell loads its function's module before the next job arrives (Node's spare, Python's zygote), so
a module's top-level code could start a thread or a detached process that keeps a CPU busy while
the cell waits, outside any job's timer. The pool reads each idle cell's CPU counter on every
maintenance pass and retires a cell that used more than it may while idle (the use is reported
to be billed). Reading a cgroup file costs microseconds; the Docker stats API would take a second.

Plain Python, no Django. Works with cgroup v1 (cpuacct) and v2, with the cgroupfs and the systemd
drivers; where no counter can be found (a remote engine) it answers None and nothing is retired."""

from __future__ import annotations

import os

ROOT = "/sys/fs/cgroup"
_CANDIDATES = (
    ("v2", "{root}/system.slice/docker-{id}.scope/cpu.stat"),
    ("v2", "{root}/docker/{id}/cpu.stat"),
    ("v1", "{root}/cpuacct/docker/{id}/cpuacct.usage"),
    ("v1", "{root}/cpu,cpuacct/docker/{id}/cpuacct.usage"),
    ("v1", "{root}/cpuacct/system.slice/docker-{id}.scope/cpuacct.usage"),
)
_found: dict[str, tuple[str, str]] = {}  # the layout that worked, so later reads try one path


def cpu_ns(container_id: str, *, root: str = ROOT) -> int | None:
    """Nanoseconds of CPU the container's processes used so far, or None if it cannot be read."""
    if not container_id:
        return None
    known = _found.get(root)
    candidates = [known] if known else list(_CANDIDATES)
    for kind, pattern in candidates:
        value = _read(kind, pattern.format(root=root, id=container_id))
        if value is not None:
            _found[root] = (kind, pattern)
            return value
    return None


def _read(kind: str, path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return None
    if kind == "v1":
        return int(text.strip() or 0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "usage_usec":
            return int(value) * 1000
    return None


def available(root: str = ROOT) -> bool:
    return os.path.isdir(root)
