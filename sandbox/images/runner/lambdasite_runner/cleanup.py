"""After a job: kill every other process, remove what the job's uid left, compare with a clean cell."""

import json
import os
import resource
import select
import signal
import stat
import time

from . import state
from .privileges import drop_to_job_uid, libc
from .wire import read_small, write_frame

CLEAN_TIMEOUT_S = 10.0
SWEEP_TIMEOUT_S = 5.0
WRITABLE_DIRS = ("/tmp", "/dev/shm", "/dev/mqueue")
SYSV_TABLES = ("shm", "sem", "msg")


def _other_pids(spare):
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (me, spare)]


def kill_others(spare=None):
    """SIGKILL every process but this one (and ``spare``, a function's zygote); usable in a signal handler."""
    if spare is None:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    for pid in _other_pids(spare):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def sweep(spare=None):
    """Kill and reap every process in the container except this one (CAP_KILL reaches the job's uid).

    With a zygote to spare, processes are killed one by one, pass after pass, until
    none is left (a fork bomb's children appear in the next pass; killed processes
    cannot fork). Returns False if some could not be removed in time."""
    if spare is None:
        while True:
            kill_others()  # again each round: a fork bomb may have made more
            try:
                os.waitpid(-1, 0)  # SIGKILL cannot be caught or blocked, so this returns promptly
            except ChildProcessError:
                return True
            except InterruptedError:
                continue
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while True:
        kill_others(spare)
        while True:  # reap the orphans that came to PID 1; the zygote reaps its own children
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not _other_pids(spare):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)


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


def sysv_ids(table):
    """Ids of the SysV IPC objects in this container's IPC namespace."""
    data = read_small("/proc/sysvipc/%s" % table)
    if data is None:
        return None
    try:
        rows = data.decode().splitlines()[1:]
        return [int(row.split()[1]) for row in rows if row.strip()]
    except (ValueError, IndexError):
        return None


def clean_sysv():
    ok = True
    removers = {
        "shm": lambda i: libc.shmctl(i, 0, None),  # IPC_RMID
        "sem": lambda i: libc.semctl(i, 0, 0),
        "msg": lambda i: libc.msgctl(i, 0, None),
    }
    for table in SYSV_TABLES:
        ids = sysv_ids(table)
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
            cleaner_main(state.job_uid)
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


def state_problems(spare=None, files_checked=False):
    """Differences from a clean cell: leftovers of the job, or anything it changed about PID 1.
    ``files_checked``: the writable directories and SysV tables were just found empty, with no
    process of the job left to change them (not read again)."""
    problems = []
    for path in () if files_checked else WRITABLE_DIRS:
        try:
            if os.listdir(path):
                problems.append("%s is not empty" % path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append("%s: %s" % (path, exc))
    for table in () if files_checked else SYSV_TABLES:
        if sysv_ids(table):
            problems.append("SysV %s objects remain" % table)
    others = _other_pids(spare)
    if others:
        problems.append("processes remain: %s" % ",".join(map(str, others[:5])))
    now = fingerprint()
    for key, value in state.baseline.items():
        if now[key] != value:
            problems.append("runner %s changed" % key)
    return problems


def _left_something():
    """Whether the job's uid left files or SysV objects (its processes are gone: nothing can add more)."""
    for path in WRITABLE_DIRS:
        try:
            if os.listdir(path):
                return True
        except FileNotFoundError:
            pass
        except OSError:
            return True  # unreadable: let the cleaner (as the job's uid) deal with it
    return any(sysv_ids(table) != [] for table in SYSV_TABLES)


def after_job(wake_r):
    """Kill, clean, compare; report a C frame. Returns False if the cell must not be used again."""
    zygote = state.zygote
    spare = zygote.pid if zygote is not None else None
    problems = [] if sweep(spare) else ["processes could not be removed"]
    if zygote is not None:
        problems += zygote.settle()
    left = _left_something()
    if left:  # most jobs leave nothing: no cleaner process to fork, run and reap
        if not run_cleaner(wake_r):
            problems.append("cleanup failed")
        sweep(spare)  # the cleaner is reaped; nothing else may exist
    # checked after every job, cleaner or not; read again where a function's zygote lives on
    problems += state_problems(spare, files_checked=not left and zygote is None)
    if zygote is not None:
        problems += zygote.problems()
    report = {"clean": not problems}
    if problems:
        report["problems"] = problems
    write_frame(b"C", json.dumps(report).encode())
    return not problems
