"""Lambdasite cell runner: PID 1 of every sandbox container, runs one job per fresh child.

Security decisions, each deliberate:

* The runner is PID 1 of the container's PID namespace, so user code cannot
  kill or stop it (the kernel ignores SIGKILL/SIGSTOP sent to init from
  inside its namespace, and ``kill(-1, ...)`` skips init).
* User code never runs as the runner's uid. The container starts as root with
  only CAP_SETUID, CAP_SETGID, CAP_SETPCAP and CAP_KILL; when the cell is bound
  to its tenant (the first request names the tenant's job uid J), the runner
  drops to uid J-1 keeping just those four capabilities. Every job process is
  uid J with an empty capability set and an empty bounding set. A job can
  therefore neither signal, ptrace, prlimit, renice nor re-pin the runner, and
  per-uid kernel budgets (POSIX message queues, pipe buffers, inotify) are the
  tenant's own, never shared with another tenant's cells.
* The runner is non-dumpable, so no process can open ``/proc/1/fd/*`` or
  ``/proc/1/mem`` to read the request stream that carries later jobs.
* User code never writes to the container's stdout: its stdout/stderr are
  pipes that the runner reads and frames, and its result travels on a third
  pipe. The runner parses none of those bytes: output is relayed as opaque
  frames, the result as one opaque frame, and the job's CPU time comes from the
  container's cgroup, never from anything the job could write.
* The runner never holds a job's data in memory it does not zero: code and
  arguments go straight to the child, output and result pass through two
  preallocated buffers with ``readv``/``writev`` (no copies) that are zeroed
  after each job, so a child forked later finds nothing of an earlier job.
* After each job every other process is killed (CAP_KILL), then a cleaner
  running as the job's uid removes everything the job could leave: files under
  ``/tmp`` and ``/dev/shm`` (iteratively: any depth, any mode), POSIX message
  queues and SysV shared memory, semaphores and message queues. The runner then
  compares what can be compared with the state at binding (its rlimits, nice
  value and CPU affinity, the writable paths, IPC objects, processes) and
  reports a ``C`` frame; on any difference or cleanup error the host retires
  the cell and the runner exits.
* The wall-clock limit holds whatever the job prints: an interval timer kills
  the job even while the runner is blocked relaying output to a slow host.

Protocol. Host -> runner (stdin): ``b"J" + u32 length + header JSON`` then the
body (``{"code", "handler", "args"}`` as JSON, ``header["body"]`` bytes).
Runner -> host (stdout): frames ``kind(1) + u32 length + payload``:
``H`` hello, ``1``/``2`` stdout/stderr bytes, ``T`` a log cap was reached,
``R`` result bytes, ``X`` exit summary JSON, ``C`` cleanliness report JSON
(after each job, before the runner reads the next request).
"""

import ctypes
import errno
import json
import os
import resource
import select
import signal
import stat
import struct
import sys
import time

PROTOCOL_VERSION = 2
RUNTIME = os.environ.get("LAMBDASITE_RUNTIME", "python")
CHUNK = 65536
CLEAN_TIMEOUT_S = 10.0
MAX_FD = 65536
WRITABLE_DIRS = ("/tmp", "/dev/shm", "/dev/mqueue")
SYSV_TABLES = ("shm", "sem", "msg")

_buf = bytearray(CHUNK)
_view = memoryview(_buf)
_result = bytearray(0)
_libc = ctypes.CDLL(None, use_errno=True)

# -- capabilities and uids ------------------------------------------------------

CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP = 5, 6, 7, 8
RUNNER_CAPS = (1 << CAP_KILL) | (1 << CAP_SETGID) | (1 << CAP_SETUID) | (1 << CAP_SETPCAP)
PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 4, 8, 24, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_V3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def _prctl(option, arg2=0):
    return _libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def capset(caps):
    """Set the effective and permitted capability sets to ``caps`` (inheritable: none)."""
    header = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = caps & 0xFFFFFFFF
    data[1].effective = data[1].permitted = (caps >> 32) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def _set_non_dumpable():
    _prctl(PR_SET_DUMPABLE, 0)


def drop_to_job_uid(uid):
    """In a child: become uid ``uid`` with no capabilities at all, bounding set included."""
    for cap in range(64):
        if _prctl(PR_CAPBSET_DROP, cap) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the kernel's last capability
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    _prctl(PR_SET_KEEPCAPS, 0)
    os.setresuid(uid, uid, uid)
    capset(0)  # from the runner's uid (not 0) the kernel would keep them
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
        raise OSError(errno.EPERM, "uid change did not take")


_job_uid = None
_baseline = None


def bind(job_uid):
    """Bind this cell to a tenant: the runner becomes uid job_uid-1 with only its four capabilities."""
    global _job_uid, _baseline
    runner_uid = job_uid - 1
    _check(_prctl(PR_SET_KEEPCAPS, 1), "keepcaps")
    os.setgroups([])
    os.setresgid(runner_uid, runner_uid, runner_uid)
    os.setresuid(runner_uid, runner_uid, runner_uid)
    capset(RUNNER_CAPS)
    _prctl(PR_SET_KEEPCAPS, 0)
    _set_non_dumpable()  # a uid change resets it
    _job_uid = job_uid
    _baseline = fingerprint()


# -- frames --------------------------------------------------------------------


def write_frame(kind, payload=b""):
    _writev_all(1, [struct.pack(">cI", kind, len(payload)), payload])


def _writev_all(fd, parts):
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


def _write_all(fd, data):
    _writev_all(fd, [data])


def read_exact(fd, n):
    parts = []
    while n > 0:
        chunk = os.read(fd, min(n, CHUNK))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


# -- the container's own accounting -----------------------------------------------


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


def _max_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


# -- after a job: kill, clean, compare -------------------------------------------


def sweep():
    """Kill and reap every process in the container except this one (CAP_KILL reaches the job's uid)."""
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


def clean_dir(root):
    """Empty ``root`` without recursion, at any depth and whatever the modes; True if it worked.

    Directories are emptied breadth-first by moving each subdirectory up to ``root``
    under a fresh name before handling it, so paths stay two levels deep and at most
    two descriptors are open: a tree 100,000 levels deep costs time, not stack,
    PATH_MAX or RLIMIT_NOFILE."""
    ok = True
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    counter = 0
    try:
        queue = list(os.listdir(root_fd))
        while queue:
            name = queue.pop()
            try:
                st = os.lstat(name, dir_fd=root_fd)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(name, dir_fd=root_fd)
                    continue
                os.chmod(name, 0o700, dir_fd=root_fd)
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
                try:
                    for child in os.listdir(sub):
                        cst = os.lstat(child, dir_fd=sub)
                        if stat.S_ISDIR(cst.st_mode):
                            os.chmod(child, 0o700, dir_fd=sub)
                            counter += 1
                            hoisted = ".lambdasite-clean-%d" % counter
                            os.rename(child, hoisted, src_dir_fd=sub, dst_dir_fd=root_fd)
                            queue.append(hoisted)
                        else:
                            os.unlink(child, dir_fd=sub)
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=root_fd)
            except OSError:
                ok = False
        return ok and not os.listdir(root_fd)
    except OSError:
        return False
    finally:
        os.close(root_fd)


def _sysv_ids(table):
    """Ids of the SysV IPC objects in this container's IPC namespace."""
    try:
        with open("/proc/sysvipc/%s" % table) as fh:
            rows = fh.read().splitlines()[1:]
        return [int(row.split()[1]) for row in rows if row.strip()]
    except (OSError, ValueError, IndexError):
        return None


def clean_sysv():
    ok = True
    removers = {
        "shm": lambda i: _libc.shmctl(i, 0, None),  # IPC_RMID
        "sem": lambda i: _libc.semctl(i, 0, 0),
        "msg": lambda i: _libc.msgctl(i, 0, None),
    }
    for table in SYSV_TABLES:
        ids = _sysv_ids(table)
        if ids is None:
            continue
        for ident in ids:
            if removers[table](ident) != 0:
                ok = False
    return ok


def cleaner_main(uid):
    """The cleaner child: as the job's uid, remove what the job's uid could leave behind."""
    try:
        drop_to_job_uid(uid)
        ok = all([clean_dir(path) for path in WRITABLE_DIRS if os.path.isdir(path)])
        ok = clean_sysv() and ok
        os._exit(0 if ok else 1)
    except BaseException:  # noqa: BLE001 - any failure means "not clean"
        os._exit(2)


def run_cleaner(wake_r):
    pid = os.fork()
    if pid == 0:
        try:
            cleaner_main(_job_uid)
        finally:
            os._exit(3)
    deadline = time.monotonic() + CLEAN_TIMEOUT_S
    while True:
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if wpid == pid:
            return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        try:
            select.select([wake_r], [], [], min(remaining, 0.05))
            os.read(wake_r, 512)
        except (BlockingIOError, InterruptedError):
            pass


def fingerprint():
    """What a job must not be able to change from one job to the next."""
    limits = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            try:
                limits[name] = resource.getrlimit(getattr(resource, name))
            except (OSError, ValueError):
                pass
    return {
        "rlimits": limits,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "affinity": sorted(os.sched_getaffinity(0)),
        "uid": os.getresuid(),
    }


def state_problems():
    """Differences from a clean cell: leftovers of the job, or anything it changed about PID 1."""
    problems = []
    for path in WRITABLE_DIRS:
        try:
            if os.listdir(path):
                problems.append("%s is not empty" % path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append("%s: %s" % (path, exc))
    for table in SYSV_TABLES:
        if _sysv_ids(table):
            problems.append("SysV %s objects remain" % table)
    others = [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]
    if others:
        problems.append("processes remain: %s" % ",".join(others[:5]))
    now = fingerprint()
    for key, value in _baseline.items():
        if now[key] != value:
            problems.append("runner %s changed" % key)
    return problems


def after_job(wake_r):
    """Kill, clean, compare; report a C frame. Returns False if the cell must not be used again."""
    sweep()
    problems = [] if run_cleaner(wake_r) else ["cleanup failed"]
    sweep()  # the cleaner is reaped; nothing else may exist
    problems += state_problems()
    report = {"clean": not problems}
    if problems:
        report["problems"] = problems
    write_frame(b"C", json.dumps(report).encode())
    return not problems


# --------------------------------------------------------------------------
# Python child: forked from the clean runner, reads its own body from stdin.
# --------------------------------------------------------------------------

USER_FILE = "handler.py"


def python_child(out_w, err_w, res_w, go_r):
    """Pre-forked between jobs: set up, wait for the go signal, drop to the job's uid, then run the body."""
    import linecache

    os.setsid()
    main_pid = os.getpid()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(res_w, 3)
    os.dup2(go_r, 4)
    res_w, go_r = 3, 4
    os.closerange(5, MAX_FD)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
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
    drop_to_job_uid(int(meta["uid"]))
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
        except (TypeError, ValueError, RecursionError) as exc:
            payload = _error_payload("ResultNotSerializable", "result is not JSON-serialisable: %s" % exc, "")
    except BaseException as exc:  # noqa: BLE001 - everything the user raised is reported
        import traceback

        try:
            tb = traceback.TracebackException.from_exception(exc)
            payload = _error_payload(type(exc).__name__, str(exc), _user_traceback(tb))
        except BaseException:  # noqa: BLE001 - a hostile exception (its __str__ raising, say)
            payload = _error_payload(type(exc).__name__, "(the exception could not be described)", "")
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
    # stdout/stderr closed first: the runner sees EOF on all three pipes and answers
    # without waiting for this process to tear down its address space
    os.close(1)
    os.close(2)
    _write_all(res_w, data)
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
        except Exception:  # noqa: BLE001 - a closed or broken stream: nothing more to say
            pass


def _user_traceback(tb):
    """Keep the user's frames and what they called; drop the runner's own frames."""
    frames = list(tb.stack)
    first = next((i for i, fs in enumerate(frames) if fs.filename == USER_FILE), None)
    if first is not None:
        tb.stack = type(tb.stack).from_list(frames[first:])
    elif tb.exc_type is not None and issubclass(tb.exc_type, SyntaxError):
        tb.stack = type(tb.stack).from_list([])
    return "".join(tb.format())


def _error_payload(etype, message, tb):
    return json.dumps({"ok": False, "error": {"type": etype, "message": message, "traceback": tb}})


# --------------------------------------------------------------------------
# Node child: a fresh node process per job, spawned ahead of time (once the
# cell knows its tenant's uid) so the job does not pay for interpreter start;
# it reads its body from fd 3 and writes its result to fd 4.
# --------------------------------------------------------------------------

NODE_CPU_S = 3600  # RLIMIT_CPU backstop; the wall-clock limit is what ends a job


class NodeSpare:
    def __init__(self, uid):
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
                for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
                    signal.signal(sig, signal.SIG_DFL)
                os.chdir("/tmp")
                drop_to_job_uid(uid)
                resource.setrlimit(resource.RLIMIT_CPU, (NODE_CPU_S, NODE_CPU_S + 1))
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
    """Between jobs, after the cleanup: start the next job's process so the job does not wait for it."""
    global _node_spare, _python_spare
    if RUNTIME == "node":
        if _job_uid is not None:  # a node process is started as the job's uid, known once bound
            _node_spare = NodeSpare(_job_uid)
    else:
        _python_spare = PythonSpare()


def start_child(meta):
    """Start the job's child; returns (pid, out_r, err_r, res_r)."""
    global _node_spare, _python_spare
    if RUNTIME == "node":
        spare = _node_spare or NodeSpare(_job_uid)
        _node_spare = None
        header = json.dumps({"max_result_bytes": meta.get("max_result_bytes")}).encode()
        _pipe_body(spare.body_w, header, meta["body"])
        return spare.pid, spare.out_r, spare.err_r, spare.res_r
    spare = _python_spare or PythonSpare()
    _python_spare = None
    spare.go(meta)
    return spare.pid, spare.out_r, spare.err_r, spare.res_r


def _pipe_body(body_w, header, size):
    """Copy the body from stdin to the node child's fd 3 (header line first)."""
    left = size
    try:
        _write_all(body_w, header + b"\n")
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
                raise EOFError from None
            left -= n
    finally:
        os.close(body_w)
        _buf[:] = bytes(CHUNK)


# --------------------------------------------------------------------------
# The job loop
# --------------------------------------------------------------------------

_job_running = False
_timer_fired = False


def _on_alarm(signum, frame):
    """The wall-clock limit, even while a write to a slow host blocks the loop below."""
    global _timer_fired
    if _job_running:
        _timer_fired = True
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _result_buffer(max_result):
    global _result
    wanted = max_result + 4096
    if len(_result) < wanted:
        _result = bytearray(wanted)
    return memoryview(_result)


class _Caps:
    """What the job may still log: bytes and lines; ``dropped`` counts what it may not."""

    def __init__(self, max_bytes, max_lines):
        self.bytes_left = max_bytes
        self.lines_left = max_lines
        self.logged = 0
        self.dropped = 0
        self.told = False

    def keep(self, n):
        """How many of the first ``n`` bytes of _buf may be relayed."""
        keep = min(n, self.bytes_left)
        if self.lines_left >= 0 and keep:
            newlines = _buf.count(b"\n", 0, keep)
            if newlines > self.lines_left:
                pos = -1
                for _ in range(self.lines_left):
                    pos = _buf.find(b"\n", pos + 1, keep)
                keep = pos + 1
                newlines = self.lines_left
            self.lines_left -= newlines
            if self.lines_left == 0:
                self.bytes_left = keep  # nothing after the last allowed line
        self.bytes_left -= keep
        self.logged += keep
        self.dropped += n - keep
        return keep


def run_job(meta, wake_r):
    global _job_running, _timer_fired
    timeout = max(int(meta.get("timeout_ms") or 5000), 1) / 1000.0
    max_result = int(meta.get("max_result_bytes") or 1 << 20)
    caps = _Caps(int(meta.get("max_log_bytes") or 1 << 20), int(meta.get("max_log_lines") or -1))
    result_view = _result_buffer(max_result)
    result_len = 0
    result_overflow = False
    oom_before = read_oom_kills()
    cpu_before = read_cpu_ns()
    started = time.monotonic()
    deadline = started + timeout
    _timer_fired = False
    _job_running = True
    signal.setitimer(signal.ITIMER_REAL, timeout + 0.05)
    pid, out_r, err_r, res_r = start_child(meta)
    streams = {out_r: b"1", err_r: b"2"}
    status = None
    rusage = None
    open_fds = {out_r, err_r, res_r}
    timed_out = False
    drain_until = None
    max_rss = None
    while True:
        if status is None:
            try:
                wpid, st, ru = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                wpid, st, ru = pid, 0, None
            if wpid == pid:
                status, rusage = st, ru
        if not open_fds and (status is not None or result_len):
            break  # the child reported and closed its pipes: answer without waiting for its exit
        if _timer_fired and status is None:
            timed_out = True
            break
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
            ready, _, _ = select.select(
                [wake_r, *open_fds], [], [], max(remaining, 0) if status is None else 0
            )
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
            if fd == res_r:
                room = len(result_view) - result_len
                try:
                    n = os.readv(fd, [result_view[result_len:]]) if room else os.readv(fd, [_view])
                except BlockingIOError:
                    open_fds.discard(fd)
                    continue
                if n == 0:
                    open_fds.discard(fd)
                elif room:
                    result_len += n
                else:
                    result_overflow = True
                continue
            try:
                n = os.readv(fd, [_view])
            except BlockingIOError:
                open_fds.discard(fd)
                continue
            if n == 0:
                open_fds.discard(fd)
                continue
            keep = caps.keep(n)
            if keep:
                write_frame(streams[fd], _view[:keep])
            if keep < n and not caps.told:
                caps.told = True
                write_frame(b"T")
    _job_running = False
    signal.setitimer(signal.ITIMER_REAL, 0)
    timed_out = timed_out or _timer_fired  # killed by the timer, whatever wait4 saw after
    wall_ms = (time.monotonic() - started) * 1000.0
    if status is None:
        max_rss = _max_rss_kb(pid)
    if timed_out:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    cpu_after = read_cpu_ns()
    summary = {
        "wall_ms": round(wall_ms, 3),
        "log_bytes": caps.logged,
        "dropped_bytes": caps.dropped,
        "oom": read_oom_kills() > oom_before >= 0,
        "timed_out": timed_out,
        "exit_code": None,
        "signal": None,
        "cpu_ms": round((cpu_after - cpu_before) / 1e6, 3) if cpu_before >= 0 and cpu_after >= 0 else None,
        "max_rss_kb": max_rss,
    }
    if status is not None:
        if os.WIFEXITED(status):
            summary["exit_code"] = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            summary["signal"] = os.WTERMSIG(status)
            summary["exit_code"] = 128 + os.WTERMSIG(status)
    elif result_len and not timed_out:
        summary["exit_code"] = 0  # it reported and is exiting; it is reaped by the sweep
    if rusage is not None:
        summary["max_rss_kb"] = rusage.ru_maxrss
    if result_overflow:
        summary["result_overflow"] = True
    elif result_len and not timed_out:
        write_frame(b"R", result_view[:result_len])
    x = json.dumps(summary).encode()
    write_frame(b"X", x)
    for fd in (out_r, err_r, res_r):
        try:
            os.close(fd)
        except OSError:
            pass
    result_view[:result_len] = bytes(result_len)
    _buf[:] = bytes(CHUNK)
    return after_job(wake_r)


def warm_up():
    import asyncio  # noqa: F401
    import linecache  # noqa: F401
    import traceback  # noqa: F401

    prepare_next()


def main():
    _set_non_dumpable()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGALRM, _on_alarm)
    # As PID 1, any signal left at its default disposition is dropped when sent from
    # inside the container. A handler would make it deliverable, so SIGTERM/SIGINT
    # (which Python handles by default) go back to SIG_DFL: nothing in the container
    # can stop the runner, and the host ends a cell with SIGKILL from outside.
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
        uid = int(meta["uid"])
        if _job_uid is None:
            bind(uid)
        elif uid != _job_uid:
            sys.stderr.write("runner: this cell belongs to another tenant\n")
            os._exit(4)
        if not run_job(meta, wake_r):
            os._exit(5)  # reported unclean: the host retires this cell
        prepare_next()


if __name__ == "__main__":
    main()
