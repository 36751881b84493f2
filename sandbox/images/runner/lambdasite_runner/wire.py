"""Frames to the host, exact reads, and the one relay buffer (zeroed after every job)."""

import os
import struct

CHUNK = 65536
MAX_FD = 65536

buf = bytearray(CHUNK)
view = memoryview(buf)


def zero_buffer():
    buf[:] = bytes(CHUNK)


def job_pipes():
    """A job process's pipes: -> (the runner's ends: stdout, stderr and result to read, input to write;
    the process's ends, in the same order). Each side closes the ends it does not keep."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    in_r, in_w = os.pipe()
    return (out_r, err_r, res_r, in_w), (out_w, err_w, res_w, in_r)


def control_pair():
    """A durable run's record channel: -> (the runner's end, the job process's end), raw descriptors of
    a connected stream socket pair (the job's end blocking, the runner's not)."""
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setblocking(False)
    return ours.detach(), theirs.detach()


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


def read_wakeups(wake_r):
    """Empty the signal wake-up pipe (non-blocking): it only says that a signal came."""
    try:
        os.read(wake_r, 512)
    except BlockingIOError:
        pass


def read_small(path):
    """A small file's bytes read with plain system calls, or None: what the runner reads around every
    job (cgroup counters, /proc) costs a third of the system calls of a text file object."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)


def _field(data, name):
    """The integer after ``name`` in a "name value" per line file, or None."""
    for line in data.decode().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return None


# the first path of each pair that answers is the container's cgroup version: it is remembered
_OOM_PATHS = ["/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"]
_CPU_PATHS = ["/sys/fs/cgroup/cpuacct/cpuacct.usage", "/sys/fs/cgroup/cpu.stat"]


def _remember(paths, path):
    if paths[0] != path:
        paths.remove(path)
        paths.insert(0, path)


def read_oom_kills():
    """Count of OOM kills in this container's memory cgroup (v1 or v2)."""
    for path in list(_OOM_PATHS):
        data = read_small(path)
        try:
            count = _field(data, "oom_kill") if data is not None else None
        except ValueError:
            count = None
        if count is not None:
            _remember(_OOM_PATHS, path)
            return count
    return -1


def read_cpu_ns():
    """CPU time used by every process of the container so far (cgroup v1 or v2), or -1."""
    for path in list(_CPU_PATHS):
        data = read_small(path)
        if data is None:
            continue
        try:
            value = int(data) if path.endswith("cpuacct.usage") else _field(data, "usage_usec") * 1000
        except (ValueError, TypeError):
            continue
        _remember(_CPU_PATHS, path)
        return value
    return -1


def max_rss_kb(pid):
    data = read_small("/proc/%d/status" % pid)
    if data is None:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("VmHWM:"):
            try:
                return int(line.split()[1])
            except (ValueError, IndexError):
                return None
    return None
