"""Frames to the host, exact reads, and the one relay buffer (zeroed after every job)."""

import os
import struct

CHUNK = 65536
MAX_FD = 65536

buf = bytearray(CHUNK)
view = memoryview(buf)


def zero_buffer():
    buf[:] = bytes(CHUNK)


def write_frame(kind, payload=b""):
    writev_all(1, [struct.pack(">cI", kind, len(payload)), payload])


def writev_all(fd, parts):
    """writev every byte of ``parts`` (bytes or memoryviews; never copied)."""
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        n = os.writev(fd, views)
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


def write_all(fd, data):
    writev_all(fd, [data])


def read_exact(fd, n):
    parts = []
    while n > 0:
        chunk = os.read(fd, min(n, CHUNK))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def pipe_through(dst_fd, size, prefix=b""):
    """Copy ``size`` bytes of the request body from stdin to ``dst_fd`` (``prefix`` first) and close it.

    If the reader is gone, the rest is still consumed, so the request stream stays in step."""
    left = size
    try:
        if prefix:
            write_all(dst_fd, prefix)
        while left > 0:
            n = os.readv(0, [view[: min(left, CHUNK)]])
            if n == 0:
                raise EOFError
            write_all(dst_fd, view[:n])
            left -= n
    except BrokenPipeError:
        while left > 0:
            n = os.readv(0, [view[: min(left, CHUNK)]])
            if n == 0:
                raise EOFError from None
            left -= n
    finally:
        os.close(dst_fd)
        zero_buffer()


def read_oom_kills():
    """Count of OOM kills in this container's memory cgroup (v1 or v2)."""
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as fh:
                for line in fh:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return -1


def read_cpu_ns():
    """CPU time used by every process of the container so far (cgroup v1 or v2), or -1."""
    try:
        with open("/sys/fs/cgroup/cpuacct/cpuacct.usage") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu.stat") as fh:
            for line in fh:
                name, _, value = line.partition(" ")
                if name == "usage_usec":
                    return int(value) * 1000
    except (OSError, ValueError):
        pass
    return -1


def max_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None
