"""The sandbox's own seccomp profile: an allowlist of the system calls Python, Node and the runner use.

Why our own and not the engine's default: the default profile of the Docker
versions in Debian (20.10) allows ``io_uring_*`` (removed only in Docker 25), and
every engine's default keeps calls that no function needs and that have a long
record of kernel exploits. Anything not listed here fails with EPERM; 32-bit
system calls are refused outright (only the native architecture is listed).

Refused on purpose, each with its reason:

* ``io_uring_setup/enter/register``: a second system-call interface that
  bypasses seccomp filtering of the calls it carries, and a rich exploit history.
* ``userfaultfd``: the classic tool for winning kernel races.
* ``keyctl``, ``add_key``, ``request_key``: the kernel keyring is not namespaced.
* ``bpf``, ``perf_event_open``: large, frequently exploited kernel surfaces.
* ``ptrace``, ``process_vm_readv/writev``, ``process_madvise``, ``pidfd_getfd``,
  ``kcmp``: no process may inspect or reach into another, even of its own uid.
* ``unshare``, ``setns``, ``clone`` with namespace flags, ``clone3`` (ENOSYS, so
  the C library falls back to ``clone``), ``mount`` and the new mount API,
  ``pivot_root``, ``chroot``: no new namespaces or mounts.
* ``name_to_handle_at``, ``open_by_handle_at``: file handles leak host inodes.
* ``vmsplice``, ``remap_file_pages``, ``modify_ldt``, legacy AIO (``io_setup``
  and friends), NUMA policy calls, ``memfd_secret``, ``landlock_*``, ``uselib``,
  ``personality`` beyond a query: unused by functions, historical bug sources.
* time setting, modules, ``kexec``, ``reboot``, ``swapon``, ``acct``,
  ``quotactl``, ``syslog``, ``iopl/ioperm``, ``fanotify``, host and domain names.
* ``socket`` of any family but AF_UNIX, AF_INET and AF_INET6 (no netlink,
  packet, AF_ALG crypto, vsock...): the container has only loopback anyway.
"""

from __future__ import annotations

import json
import platform
from functools import lru_cache

EPERM = 1
ENOSYS = 38
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACE_FLAGS = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)

ALLOWED = {
    "files": """
        read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 open openat openat2
        close close_range creat lseek stat fstat lstat newfstatat statx statfs fstatfs access
        faccessat faccessat2 readlink readlinkat getdents getdents64 getcwd chdir fchdir mkdir
        mkdirat rmdir rename renameat renameat2 link linkat symlink symlinkat unlink unlinkat chmod
        fchmod fchmodat chown fchown fchownat lchown umask truncate ftruncate fallocate fsync
        fdatasync sync syncfs sync_file_range flock fcntl dup dup2 dup3 pipe pipe2 ioctl
        copy_file_range sendfile splice tee utime utimes utimensat futimesat mknod mknodat fadvise64
        readahead getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr
        flistxattr removexattr lremovexattr fremovexattr inotify_init inotify_init1
        inotify_add_watch inotify_rm_watch memfd_create
    """.split(),
    "memory": """
        brk mmap munmap mremap mprotect madvise mincore msync mlock mlock2 munlock mlockall
        munlockall membarrier pkey_alloc pkey_free pkey_mprotect
    """.split(),
    "processes": """
        fork vfork execve execveat exit exit_group wait4 waitid kill tkill tgkill getpid getppid
        gettid getpgid setpgid getpgrp getsid setsid getuid geteuid getgid getegid getresuid
        getresgid getgroups setuid setgid setreuid setregid setresuid setresgid setgroups setfsuid
        setfsgid capget capset prctl arch_prctl set_tid_address set_robust_list get_robust_list rseq
        getrlimit setrlimit prlimit64 getrusage getpriority setpriority sched_yield
        sched_getaffinity sched_setaffinity sched_getparam sched_setparam sched_getscheduler
        sched_setscheduler sched_get_priority_max sched_get_priority_min sched_rr_get_interval
        sched_getattr sched_setattr ioprio_get ioprio_set uname sysinfo getcpu times pidfd_open
        pidfd_send_signal seccomp futex futex_waitv getrandom
    """.split(),
    "signals": """
        rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigsuspend rt_sigtimedwait
        rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack signalfd signalfd4 pause alarm getitimer
        setitimer restart_syscall
    """.split(),
    "time": """
        clock_gettime clock_getres clock_nanosleep nanosleep gettimeofday time timer_create
        timer_settime timer_gettime timer_getoverrun timer_delete timerfd_create timerfd_settime
        timerfd_gettime
    """.split(),
    "events": """
        select pselect6 poll ppoll epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait
        epoll_pwait2 eventfd eventfd2
    """.split(),
    # private IPC namespace per cell, emptied after every job
    "ipc": """
        shmget shmat shmdt shmctl semget semop semtimedop semctl msgget msgsnd msgrcv msgctl mq_open
        mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
    """.split(),
    # network "none": loopback only
    "sockets": """
        socketpair bind listen accept accept4 connect getsockname getpeername sendto recvfrom
        sendmsg recvmsg sendmmsg recvmmsg shutdown setsockopt getsockopt
    """.split(),
}

# named here so the tests can try each one; they are simply not in the allowlist
REFUSED = """
    io_uring_setup io_uring_enter io_uring_register userfaultfd keyctl add_key request_key bpf
    perf_event_open ptrace process_vm_readv process_vm_writev process_madvise pidfd_getfd kcmp
    unshare setns mount umount2 pivot_root chroot name_to_handle_at open_by_handle_at vmsplice
    remap_file_pages modify_ldt io_setup mbind set_mempolicy migrate_pages move_pages memfd_secret
    landlock_create_ruleset settimeofday clock_settime adjtimex init_module kexec_load reboot swapon
    acct quotactl syslog iopl fanotify_init sethostname
""".split()

ARCHES = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64", "arm64": "SCMP_ARCH_AARCH64"}


def profile() -> dict:
    names = sorted({name for group in ALLOWED.values() for name in group})
    overlap = set(names) & set(REFUSED)
    assert not overlap, overlap
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": [ARCHES.get(platform.machine(), "SCMP_ARCH_X86_64")],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
                ],
            },
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
            *[
                {
                    "names": ["socket"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": family, "op": "SCMP_CMP_EQ"}],
                }
                for family in (AF_UNIX, AF_INET, AF_INET6)
            ],
            *[
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
                }
                for value in (0, 0xFFFFFFFF)  # the default persona, or a query
            ],
        ],
    }


@lru_cache(maxsize=1)
def profile_json() -> str:
    """The profile as the engine takes it inline: ``security_opt=["seccomp=" + profile_json()]``."""
    return json.dumps(profile(), separators=(",", ":"))
