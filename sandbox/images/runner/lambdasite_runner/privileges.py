"""Capabilities and uids: the runner keeps four capabilities as uid J-1; job processes are uid J with none."""

import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)

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


def check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def prctl(option, arg2=0):
    return libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def capset(caps):
    """Set the effective and permitted capability sets to ``caps`` (inheritable: none)."""
    header = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = caps & 0xFFFFFFFF
    data[1].effective = data[1].permitted = (caps >> 32) & 0xFFFFFFFF
    check(libc.capset(ctypes.byref(header), data), "capset")


def set_non_dumpable():
    """No process may open this one's /proc files (mem, fd, environ) or ptrace it."""
    prctl(PR_SET_DUMPABLE, 0)


def drop_capabilities():
    """Keep this process's uid but no capability at all, bounding set included (the door's relay)."""
    for cap in range(64):
        if prctl(PR_CAPBSET_DROP, cap) != 0 and ctypes.get_errno() == errno.EINVAL:
            break
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    capset(0)


def drop_to_job_uid(uid):
    """In a child: become uid ``uid`` with no capabilities at all, bounding set included."""
    for cap in range(64):
        if prctl(PR_CAPBSET_DROP, cap) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the kernel's last capability
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    prctl(PR_SET_KEEPCAPS, 0)
    os.setresuid(uid, uid, uid)
    capset(0)  # from the runner's uid (not 0) the kernel would keep them
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
        raise OSError(errno.EPERM, "uid change did not take")


def become_runner(job_uid):
    """Bind the runner to a tenant: uid job_uid-1 with only its four capabilities."""
    runner_uid = job_uid - 1
    check(prctl(PR_SET_KEEPCAPS, 1), "keepcaps")
    os.setgroups([])
    os.setresgid(runner_uid, runner_uid, runner_uid)
    os.setresuid(runner_uid, runner_uid, runner_uid)
    capset(RUNNER_CAPS)
    prctl(PR_SET_KEEPCAPS, 0)
    set_non_dumpable()  # a uid change resets it
