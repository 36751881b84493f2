"""The kernel surface against the real sandbox: the seccomp profile (``sandbox/seccomp.py``) refuses
every dangerous system call with EPERM, and node still runs everything it needs under it."""

from __future__ import annotations

import pytest

from sandbox import seccomp
from sandbox.tests.test_hostile import run_ok

pytestmark = pytest.mark.docker

X86_64 = {
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "userfaultfd": 323,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "bpf": 321,
    "perf_event_open": 298,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "process_madvise": 440,
    "pidfd_getfd": 438,
    "kcmp": 312,
    "unshare": 272,
    "setns": 308,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "vmsplice": 278,
    "remap_file_pages": 216,
    "modify_ldt": 154,
    "io_setup": 206,
    "mbind": 237,
    "set_mempolicy": 238,
    "migrate_pages": 256,
    "move_pages": 279,
    "memfd_secret": 447,
    "landlock_create_ruleset": 444,
    "settimeofday": 164,
    "clock_settime": 227,
    "adjtimex": 159,
    "init_module": 175,
    "kexec_load": 246,
    "reboot": 169,
    "swapon": 167,
    "acct": 163,
    "quotactl": 179,
    "syslog": 103,
    "iopl": 172,
    "fanotify_init": 300,
    "sethostname": 170,
}
SYSCALL_PROBE = """
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return 0 if ret >= 0 else ctypes.get_errno()
def main(numbers):
    out = {name: call(nr, 0, 0, 0, 0, 0, 0) for name, nr in numbers.items()}
    # arguments that would succeed if the call were allowed
    params = ctypes.create_string_buffer(120)
    out["io_uring_setup(4)"] = call(425, 4, ctypes.addressof(params))
    out["userfaultfd(user mode)"] = call(323, 1)
    out["keyctl(get session keyring)"] = call(250, 0, -3, 0)
    out["ptrace(TRACEME)"] = call(101, 0)
    out["unshare(NEWUSER)"] = call(272, 0x10000000)
    out["clone(NEWUSER)"] = call(56, 0x10000000 | 17, 0, 0, 0, 0)
    out["personality(ADDR_NO_RANDOMIZE)"] = call(135, 0x0040000)
    out["clone3"] = call(435, 0, 0)
    for family in (16, 17, 38, 40):  # netlink, packet, AF_ALG, vsock
        out[f"socket({family})"] = call(41, family, 1, 0)
    allowed = {"getpid": call(39), "personality(query)": call(135, 0xFFFFFFFF)}
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.close()
    allowed["fork"] = 0 if os.waitpid(os.fork() or os._exit(0), 0) else 1
    return {"refused": out, "allowed": allowed}
"""


def test_the_seccomp_profile_refuses_every_dangerous_call(pool):
    assert set(X86_64) == set(seccomp.REFUSED)
    result = run_ok(pool, "python", SYSCALL_PROBE, "seccomp", args=[X86_64])
    refused = result.result["refused"]
    clone3 = refused.pop("clone3")
    assert clone3 == 38  # ENOSYS: the C library falls back to clone
    wrong = {name: err for name, err in refused.items() if err != 1}
    assert not wrong, f"not refused with EPERM: {wrong}"
    assert all(value == 0 for value in result.result["allowed"].values()), result.result["allowed"]


def test_node_still_runs_everything_it_needs_under_the_profile(pool):
    code = (
        "const fs = require('fs'); const cp = require('child_process'); const crypto = require('crypto');\n"
        "const { Worker } = require('worker_threads');\n"
        "async function main() {\n"
        "  fs.writeFileSync('/tmp/a', 'x'); const read = fs.readFileSync('/tmp/a', 'utf8');\n"
        "  const child = cp.execFileSync('/bin/echo', ['hi']).toString().trim();\n"
        "  const hash = crypto.createHash('sha256').update('x').digest('hex').slice(0, 8);\n"
        "  const fromWorker = await new Promise(r => { const w = new "
        "Worker('require(\"worker_threads\").parentPort.postMessage(7)', { eval: true "
        "}); w.on('message', r); });\n"
        "  await new Promise(r => setTimeout(r, 10));\n"
        "  return { read, child, hash, fromWorker };\n}\n"
    )
    result = run_ok(pool, "node", code, "node-profile")
    assert result.result == {"read": "x", "child": "hi", "hash": "2d711642", "fromWorker": 7}
