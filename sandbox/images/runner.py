"""Lambdasite cell runner: PID 1 of every sandbox container, runs one job per fresh child.

Security decisions, each deliberate:

* The runner is PID 1 of the container's PID namespace, so user code cannot
  kill or stop it (the kernel ignores SIGKILL/SIGSTOP sent to init from
  inside its namespace, and ``kill(-1, ...)`` skips init).
* The runner makes itself non-dumpable, so a same-uid child can neither
  ptrace it nor open ``/proc/1/fd/*`` or ``/proc/1/mem`` to read the request
  stream that carries later jobs.
* User code never writes to the container's stdout: its stdout/stderr are
  pipes that the runner reads and frames, and its result travels on a third
  pipe. Whatever a job prints, it cannot forge or corrupt a frame.
* The runner never holds a job's code or arguments in memory (Python jobs
  read their body straight from stdin in the forked child), and relays output
  through one reused buffer that is zeroed after each job, so a forked child
  cannot find the previous job's data in inherited memory.
* After each job every other process in the container is killed and reaped,
  and ``/tmp`` and ``/dev/shm`` are emptied, so nothing survives into the
  next job.

Protocol. Host -> runner (stdin): ``b"J" + u32 length + header JSON`` then the
body (``{"code", "handler", "args"}`` as JSON, ``header["body"]`` bytes).
Runner -> host (stdout): frames ``kind(1) + u32 length + payload``:
``H`` hello, ``1``/``2`` stdout/stderr bytes, ``T`` log cap reached,
``R`` result JSON, ``X`` exit summary JSON.
"""

import ctypes
import json
import os
import select
import shutil
import signal
import struct
import sys
import time

PROTOCOL_VERSION = 1
RUNTIME = os.environ.get("LAMBDASITE_RUNTIME", "python")
CHUNK = 65536
_buf = bytearray(CHUNK)
_view = memoryview(_buf)


def _set_non_dumpable():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def write_frame(kind, payload):
    data = struct.pack(">cI", kind, len(payload)) + payload
    _write_all(1, data)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd, n):
    parts = []
    while n > 0:
        chunk = os.read(fd, min(n, CHUNK))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_oom_kills():
    """Count of OOM kills in this container's memory cgroup (v1 or v2)."""
    for path, key in (
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
    ):
        try:
            with open(path) as fh:
                for line in fh:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            continue
    return -1


def sweep():
    """Kill and reap every process in the container except this one."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)  # again each round: a fork bomb may have made more
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)  # SIGKILL cannot be caught or blocked, so this returns promptly
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def clean_dirs():
    for root in ("/tmp", "/dev/shm"):
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for name in names:
            path = os.path.join(root, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    _make_writable(path)
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                pass


def _make_writable(top):
    for dirpath, dirnames, _ in os.walk(top):
        try:
            os.chmod(dirpath, 0o700)
        except OSError:
            pass
        for name in dirnames:
            try:
                os.chmod(os.path.join(dirpath, name), 0o700)
            except OSError:
                pass


# --------------------------------------------------------------------------
# Python child: forked from the warmed runner, reads its own body from stdin.
# --------------------------------------------------------------------------

USER_FILE = "handler.py"


def python_child(out_w, err_w, res_w, go_r):
    """Pre-forked between jobs: set up, wait for the go signal, then read the body and run it."""
    import linecache
    import resource

    os.setsid()
    main_pid = os.getpid()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(res_w, 3)
    os.dup2(go_r, 4)
    res_w, go_r = 3, 4
    os.closerange(5, MAX_FD)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    os.chdir("/tmp")
    sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")
    sys.stderr.reconfigure(line_buffering=True, errors="backslashreplace")
    try:
        (size,) = struct.unpack(">I", read_exact(go_r, 4))
        meta = json.loads(read_exact(go_r, size))
    except (EOFError, ValueError):
        os._exit(0)  # the runner discarded this spare
    os.close(go_r)
    body = read_exact(0, meta["body"])
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    cpu = int(meta.get("cpu_s") or 0)
    if cpu > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    max_result = int(meta.get("max_result_bytes") or 1 << 20)

    req = json.loads(body)
    src = req["code"]
    del body
    linecache.cache[USER_FILE] = (len(src), None, src.splitlines(True), USER_FILE)
    try:
        code = compile(src, USER_FILE, "exec")
        namespace = {"__name__": "__main__", "__file__": USER_FILE}
        exec(code, namespace)
        fn = namespace.get(req["handler"])
        if not callable(fn):
            raise LookupError("handler %r is not defined as a function" % req["handler"])
        args = req.get("args") or []
        value = fn(*args) if isinstance(args, list) else fn(**args)
        if hasattr(value, "__await__"):
            value = _run_awaitable(value)
        try:
            payload = json.dumps({"ok": True, "result": value}, allow_nan=False)
        except (TypeError, ValueError) as exc:
            payload = _error_payload(
                "ResultNotSerializable", "result is not JSON-serialisable: %s" % exc, ""
            )
    except BaseException as exc:  # noqa: BLE001 - everything the user raised is reported
        import traceback

        tb = traceback.TracebackException.from_exception(exc)
        payload = _error_payload(type(exc).__name__, str(exc), _user_traceback(tb))
    _flush_std()
    if os.getpid() != main_pid:
        # a process the user forked reached the end of the handler: only the job's own process reports
        os._exit(0)
    data = payload.encode("utf-8", "backslashreplace")
    if len(data) > max_result:
        data = _error_payload(
            "ResultTooLarge",
            "result is %d bytes, over the %d-byte limit" % (len(data), max_result),
            "",
        ).encode()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = '{"cpu_ms": %.3f, "max_rss_kb": %d}\n' % ((usage.ru_utime + usage.ru_stime) * 1000.0, usage.ru_maxrss)
    # stdout/stderr closed first: the runner sees EOF on all three pipes and answers
    # without waiting for this process to tear down its address space
    os.close(1)
    os.close(2)
    _write_all(res_w, stats.encode() + data)
    os.close(res_w)
    os._exit(0)


def _run_awaitable(value):
    import asyncio

    async def _await():
        return await value

    return asyncio.run(_await())


def _flush_std():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


MAX_FD = 65536


def _user_traceback(tb):
    """Keep the user's frames and what they called; drop the runner's own frames."""
    frames = list(tb.stack)
    first = next((i for i, fs in enumerate(frames) if fs.filename == USER_FILE), None)
    if first is not None:
        tb.stack = type(tb.stack).from_list(frames[first:])
    elif tb.exc_type is not None and issubclass(tb.exc_type, SyntaxError):
        tb.stack = type(tb.stack).from_list([])
    # chained exceptions keep the runner-free form too
    return "".join(tb.format())


def _error_payload(etype, message, tb):
    return json.dumps({"ok": False, "error": {"type": etype, "message": message, "traceback": tb}})


# --------------------------------------------------------------------------
# Node child: a fresh node process per job, spawned ahead of time so the job
# does not pay for interpreter start; it reads its body from fd 3.
# --------------------------------------------------------------------------


class NodeSpare:
    def __init__(self):
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.res_r, res_w = os.pipe()
        body_r, self.body_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.setsid()
                devnull = os.open("/dev/null", os.O_RDONLY)
                os.dup2(devnull, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.dup2(body_r, 3)
                os.dup2(res_w, 4)
                os.closerange(5, MAX_FD)
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                os.chdir("/tmp")
                os.execv(
                    "/usr/bin/node",
                    ["node", "--max-semi-space-size=1", "--stack-size=984", "/opt/lambdasite/child.js"],
                )
            finally:
                os._exit(71)
        for fd in (out_w, err_w, res_w, body_r):
            os.close(fd)


class PythonSpare:
    """A child forked ahead of the job from the clean runner; it blocks until given the job's header."""

    def __init__(self):
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.res_r, res_w = os.pipe()
        go_r, self.go_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                python_child(out_w, err_w, res_w, go_r)
            finally:
                os._exit(70)
        for fd in (out_w, err_w, res_w, go_r):
            os.close(fd)

    def go(self, meta):
        head = json.dumps(meta).encode()
        try:
            _write_all(self.go_w, struct.pack(">I", len(head)) + head)
        finally:
            os.close(self.go_w)


_node_spare = None
_python_spare = None


def prepare_next():
    """Between jobs, after the sweep: start the next job's process so the job does not wait for it."""
    global _node_spare, _python_spare
    if RUNTIME == "node":
        _node_spare = NodeSpare()
    else:
        _python_spare = PythonSpare()


def start_child(meta):
    """Start the job's child; returns (pid, out_r, err_r, res_r)."""
    global _node_spare, _python_spare
    if RUNTIME == "node":
        spare = _node_spare or NodeSpare()
        _node_spare = None
        import resource

        cpu = int(meta.get("cpu_s") or 0)
        if cpu > 0:
            try:
                resource.prlimit(spare.pid, resource.RLIMIT_CPU, (cpu, cpu + 1))
            except (OSError, AttributeError):
                pass
        header = json.dumps({"max_result_bytes": meta.get("max_result_bytes")}).encode()
        _pipe_body(spare.body_w, header, meta["body"])
        return spare.pid, spare.out_r, spare.err_r, spare.res_r
    spare = _python_spare or PythonSpare()
    _python_spare = None
    spare.go(meta)
    return spare.pid, spare.out_r, spare.err_r, spare.res_r


def _pipe_body(body_w, header, size):
    """Copy the body from stdin to the node child's fd 3 (header line first)."""
    try:
        _write_all(body_w, header + b"\n")
        left = size
        while left > 0:
            n = os.readv(0, [_view[: min(left, CHUNK)]])
            if n == 0:
                raise EOFError
            _write_all(body_w, _view[:n])
            left -= n
    except BrokenPipeError:
        # the child died before reading: consume the rest to keep the stream in sync
        while left > 0:
            n = os.readv(0, [_view[: min(left, CHUNK)]])
            if n == 0:
                raise EOFError
            left -= n
    finally:
        os.close(body_w)
        _buf[:] = bytes(CHUNK)


# --------------------------------------------------------------------------
# The job loop
# --------------------------------------------------------------------------


def run_job(meta, wake_r):
    timeout = max(int(meta.get("timeout_ms") or 5000), 1) / 1000.0
    max_log = int(meta.get("max_log_bytes") or 1 << 20)
    max_result = int(meta.get("max_result_bytes") or 1 << 20)
    oom_before = read_oom_kills()
    started = time.monotonic()
    deadline = started + timeout
    pid, out_r, err_r, res_r = start_child(meta)
    streams = {out_r: b"1", err_r: b"2"}
    result = bytearray()
    result_overflow = False
    logged = dropped = 0
    status = None
    rusage = None
    open_fds = {out_r, err_r, res_r}
    timed_out = False
    drain_until = None
    while True:
        if status is None:
            try:
                wpid, st, ru = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                wpid, st, ru = pid, 0, None
            if wpid == pid:
                status, rusage = st, ru
        if not open_fds and (status is not None or result):
            break  # the child reported and closed its pipes: answer without waiting for its exit
        if status is not None:
            # the child is gone: drain what is already buffered, briefly, then stop
            # (a process it left behind must not keep the job open by writing)
            if drain_until is None:
                drain_until = min(time.monotonic() + 0.05, deadline)
                for fd in list(open_fds):
                    os.set_blocking(fd, False)
            elif time.monotonic() > drain_until:
                break
        remaining = deadline - time.monotonic()
        if remaining <= 0 and status is None:
            timed_out = True
            break
        try:
            ready, _, _ = select.select([wake_r, *open_fds], [], [], max(remaining, 0) if status is None else 0)
        except InterruptedError:
            continue
        if status is not None and not ready:
            break
        for fd in ready:
            if fd == wake_r:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
                continue
            try:
                n = os.readv(fd, [_view])
            except BlockingIOError:
                open_fds.discard(fd)
                continue
            if n == 0:
                open_fds.discard(fd)
                continue
            if fd == res_r:
                if len(result) + n <= max_result + 4096:
                    result += _view[:n]
                else:
                    result_overflow = True
                continue
            keep = max(0, min(n, max_log - logged))
            if keep:
                write_frame(streams[fd], bytes(_view[:keep]))
                logged += keep
            if keep < n and not dropped:
                write_frame(b"T", b"")
            dropped += n - keep
    wall_ms = (time.monotonic() - started) * 1000.0
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    summary = {
        "wall_ms": round(wall_ms, 3),
        "log_bytes": logged,
        "dropped_bytes": dropped,
        "oom": read_oom_kills() > oom_before >= 0,
        "timed_out": timed_out,
        "exit_code": None,
        "signal": None,
        "cpu_ms": None,
        "max_rss_kb": None,
    }
    if status is not None:
        if os.WIFEXITED(status):
            summary["exit_code"] = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            summary["signal"] = os.WTERMSIG(status)
            summary["exit_code"] = 128 + os.WTERMSIG(status)
    elif result and not timed_out:
        summary["exit_code"] = 0  # it reported and is exiting; it is reaped below
    if rusage is not None:
        summary["cpu_ms"] = round((rusage.ru_utime + rusage.ru_stime) * 1000.0, 3)
        summary["max_rss_kb"] = rusage.ru_maxrss
    payload = b""
    if result and not timed_out:
        stats_line, _, payload = bytes(result).partition(b"\n")
        try:
            stats = json.loads(stats_line)
            summary["cpu_ms"] = summary["cpu_ms"] if summary["cpu_ms"] is not None else stats.get("cpu_ms")
            summary["max_rss_kb"] = summary["max_rss_kb"] or stats.get("max_rss_kb")
        except ValueError:
            payload = bytes(result)  # written by user code, not the child: judged as a result
    if result_overflow:
        summary["result_overflow"] = True
        payload = b""
    frames = b""
    if payload:
        frames += struct.pack(">cI", b"R", len(payload)) + payload
    x = json.dumps(summary).encode()
    _write_all(1, frames + struct.pack(">cI", b"X", len(x)) + x)
    # after answering, before reading the next request: nothing of this job survives
    sweep()
    for fd in (out_r, err_r, res_r):
        try:
            os.close(fd)
        except OSError:
            pass
    result[:] = bytes(len(result))
    _buf[:] = bytes(CHUNK)
    clean_dirs()


def warm_up():
    import asyncio  # noqa: F401
    import linecache  # noqa: F401
    import resource  # noqa: F401
    import traceback  # noqa: F401

    prepare_next()


def main():
    _set_non_dumpable()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # As PID 1, any signal left at its default disposition is dropped when sent from
    # inside the container. A handler would make it deliverable, so SIGTERM/SIGINT
    # (which Python handles by default) go back to SIG_DFL: user code cannot stop the
    # runner, and the host ends a cell with SIGKILL from outside the namespace.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    warm_up()
    version = "%d.%d.%d" % sys.version_info[:3]
    write_frame(b"H", json.dumps({"v": PROTOCOL_VERSION, "runtime": RUNTIME, "python": version}).encode())
    while True:
        try:
            head = read_exact(0, 5)
        except EOFError:
            os._exit(0)
        kind, size = struct.unpack(">cI", head)
        if kind != b"J" or size > 65536:
            sys.stderr.write("runner: bad request frame\n")
            os._exit(3)
        meta = json.loads(read_exact(0, size))
        run_job(meta, wake_r)
        prepare_next()


if __name__ == "__main__":
    main()
