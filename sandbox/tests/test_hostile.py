"""The abuse classes a security review found past the first abuse suite, against the real sandbox:
hostile result bytes, state that survives into the next job, jobs reaching for PID 1, shared
per-uid budgets, output floods against the clock, and storage abuse (the kernel surface:
test_seccomp)."""

from __future__ import annotations

import threading
import time

import pytest

from sandbox import Limits, RunSpec
from sandbox.tests.test_abuse import assert_next_job_clean, assert_not_in_next_jobs_memory

pytestmark = pytest.mark.docker


def run(pool, runtime: str, code: str, tenant: str, args=None, on_output=None, **limits):
    opts = {"timeout_ms": 5000, **limits}
    return pool.run(
        RunSpec(runtime=runtime, code=code, args=args or [], tenant=tenant, limits=Limits(**opts)), on_output
    )


def run_ok(pool, runtime: str, code: str, tenant: str, **kwargs):
    """``run``, and the job must have succeeded (else its error is the assertion's message)."""
    result = run(pool, runtime, code, tenant, **kwargs)
    assert result.status == "succeeded", result.error
    return result


def assert_cell_serves_next_job(pool, runtime: str, tenant: str, docker_client) -> None:
    assert_next_job_clean(pool, runtime, tenant, docker_client)
    again = run(
        pool,
        runtime,
        {"python": "def main():\n    return 'fine'\n", "node": "function main() { return 'fine'; }"}[runtime],
        tenant,
    )
    assert again.status == "succeeded" and again.result == "fine", again.error


# -- hostile bytes on the job's own result pipe --------------------------------------

WRITE_RESULT = {
    "python": "import os\ndef main():\n    os.write(3, {payload})\n    return 'normal'\n",
    "node": "const fs = require('fs');\nfunction main() {{\n  fs.writeSync(4, {payload});\n  "
    "return 'normal';\n}}\n",
}
HOSTILE_PAYLOADS = {
    # a first line nested 100,000 deep: once killed the runner (RecursionError in PID 1)
    "deep_first_line": ("b'[' * 100000 + b'\\n'", "'['.repeat(100000) + '\\n'"),
    # ~200 KB, under the result cap, nested 100,000 deep: once sent the worker into endless hand-backs
    "deep_result": ("b'[' * 100000 + b']' * 100000", "'['.repeat(100000) + ']'.repeat(100000)"),
    "nan": ('b\'{"ok": true, "result": NaN}\'', '\'{"ok": true, "result": NaN}\''),
    "overflowing_float": ('b\'{"ok": true, "result": 1e400}\'', '\'{"ok": true, "result": 1e400}\''),
    "fake_stats_line": ('b\'{"cpu_ms": "lots"}\\n\'', '\'{"cpu_ms": "lots"}\\n\''),
}


@pytest.mark.parametrize("runtime", ["python", "node"])
@pytest.mark.parametrize("name", sorted(HOSTILE_PAYLOADS))
def test_hostile_result_bytes_fail_the_job_not_the_runner(pool, docker_client, runtime, name):
    payload = HOSTILE_PAYLOADS[name][0 if runtime == "python" else 1]
    result = run(pool, runtime, WRITE_RESULT[runtime].format(payload=payload), f"hostile-{name}")
    assert result.status == "failed", (result.status, result.result)
    assert result.error["type"] == "CorruptResult"
    # CPU time is the container's own accounting, never what the job wrote
    assert isinstance(result.cpu_ms, float) and 0 <= result.cpu_ms < 5000
    assert_cell_serves_next_job(pool, runtime, f"hostile-{name}", docker_client)


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_lone_surrogates_and_nul_in_a_result_become_replacement_characters(pool, runtime):
    code = {
        "python": "def main():\n    return {'lone': '\\ud800', 'nul': 'a\\x00b', '\\udfff': 'key'}\n",
        "node": "function main() { return { lone: '\\ud800', nul: 'a\\u0000b', '\\udfff': 'key' }; }\n",
    }[runtime]
    result = run_ok(pool, runtime, code, "surrogates")
    assert result.result == {"lone": "\ufffd", "nul": "a\ufffdb", "\ufffd": "key"}


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_deeply_nested_return_value_is_refused_cleanly(pool, runtime):
    code = {
        "python": "def main():\n    v = []\n    for _ in range(500):\n        v = [v]\n    return v\n",
        "node": "function main() { let v = []; for (let i = 0; i < 500; i++) v = [v]; return v; }\n",
    }[runtime]
    result = run(pool, runtime, code, "deep-return")
    assert result.status == "failed" and result.error["type"] == "CorruptResult"
    assert "deeper than 100" in result.error["message"]
    shallow = run(pool, runtime, code.replace("500", "90"), "deep-return")
    assert shallow.status == "succeeded"


def test_a_hostile_exception_message_is_kept_short_and_storable(pool):
    code = "def main():\n    raise ValueError('\\ud800' + 'x' * 100000)\n"
    result = run(pool, "python", code, "hostile-error")
    assert result.status == "failed" and result.error["type"] == "ValueError"
    assert result.error["message"].startswith("\ufffd") and len(result.error["message"]) < 17000


# -- nothing of a job survives into the next one -------------------------------------

DEEP_TREE = {
    "python": (
        "import os\ndef main():\n"
        "    os.chdir('/tmp')\n"
        "    for _ in range(1000):\n        os.mkdir('d')\n        os.chdir('d')\n"
        "    open('bottom', 'w').write('x')\n"
        "    os.makedirs('/tmp/locked/inner')\n    open('/tmp/locked/inner/f', 'w').write('x')\n"
        "    os.chmod('/tmp/locked/inner', 0)\n    os.chmod('/tmp/locked', 0)\n"
        "    os.mkdir('/dev/shm/x')\n    open('/dev/shm/x/y', 'w').write('y')\n"
        "    os.symlink('/etc/passwd', '/tmp/link')\n"
        "    return 'planted'\n"
    ),
    "node": (
        "const fs = require('fs');\nfunction main() {\n"
        "  let p = '/tmp';\n  for (let i = 0; i < 1000; i++) { p += '/d'; fs.mkdirSync(p); }\n"
        "  fs.writeFileSync(p + '/bottom', 'x');\n"
        "  fs.mkdirSync('/tmp/locked/inner', { recursive: true });\n  "
        "fs.writeFileSync('/tmp/locked/inner/f', 'x');\n"
        "  fs.chmodSync('/tmp/locked/inner', 0);\n  fs.chmodSync('/tmp/locked', 0);\n"
        "  fs.symlinkSync('/etc/passwd', '/tmp/link');\n"
        "  return 'planted';\n}\n"
    ),
}


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_tree_1000_deep_and_mode_000_directories_are_cleaned(pool, docker_client, runtime):
    first = run(pool, runtime, DEEP_TREE[runtime], f"deep-tree-{runtime}")
    assert first.status == "succeeded" and first.result == "planted", first.error
    assert_next_job_clean(pool, runtime, f"deep-tree-{runtime}", docker_client)
    probe = run(
        pool,
        runtime,
        {"python": "def main():\n    return 1\n", "node": "function main() { return 1; }"}[runtime],
        f"deep-tree-{runtime}",
    )
    assert probe.container_id == first.container_id  # cleaned, so the cell was kept


IPC_PLANT = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL("librt.so.1", use_errno=True)
def main():
    shm = libc.shmget(0x1234, 4096, 0o1600)        # IPC_CREAT | 0600
    sem = libc.semget(0x1235, 1, 0o1600)
    msg = libc.msgget(0x1236, 0o1600)
    rt.mq_open.restype = ctypes.c_int
    mq = rt.mq_open(b"/leftover", os.O_CREAT | os.O_RDWR, 0o600, None)
    return {"shm": shm, "sem": sem, "msg": msg, "mq": mq}
"""
IPC_PROBE = """
import os
def main():
    rows = {t: open(f"/proc/sysvipc/{t}").read().splitlines()[1:] for t in ("shm", "sem", "msg")}
    return {"sysv": {t: len(r) for t, r in rows.items()}, "mqueue": os.listdir("/dev/mqueue")}
"""


def test_ipc_objects_of_a_job_do_not_survive_it(pool):
    planted = run_ok(pool, "python", IPC_PLANT, "ipc")
    assert all(v >= 0 for v in planted.result.values()), planted.result
    probe = run(pool, "python", IPC_PROBE, "ipc")
    assert probe.status == "succeeded" and probe.container_id == planted.container_id
    assert probe.result == {"sysv": {"shm": 0, "sem": 0, "msg": 0}, "mqueue": []}


TOUCH_PID1 = """
import ctypes, os, resource, signal
def main():
    out = {}
    def attempt(name, fn):
        try:
            fn()
            out[name] = "done"
        except OSError as exc:
            out[name] = exc.errno
    attempt("prlimit", lambda: resource.prlimit(1, resource.RLIMIT_AS, (64 << 20, 64 << 20)))
    attempt("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, 1, 19))
    attempt("affinity", lambda: os.sched_setaffinity(1, {0}))
    attempt("sigstop", lambda: os.kill(1, signal.SIGSTOP))
    attempt("environ", lambda: open("/proc/1/environ", "rb").read())
    libc = ctypes.CDLL(None, use_errno=True)
    out["ptrace_attach"] = "done" if libc.ptrace(16, 1, 0, 0) == 0 else ctypes.get_errno()
    return out
"""


def test_a_job_cannot_touch_the_runner(pool, docker_client):
    result = run_ok(pool, "python", TOUCH_PID1, "pid1")
    assert "done" not in result.result.values(), result.result
    # and the next job runs under the runner's original limits (a 64 MB address space would break it)
    big = run(pool, "python", "def main():\n    return len(bytearray(80 << 20))\n", "pid1")
    assert big.status == "succeeded" and big.result == 80 << 20, big.error
    assert_next_job_clean(pool, "python", "pid1", docker_client)


def test_node_cannot_touch_the_runner_either(pool):
    code = (
        "const os = require('os');\nfunction main() {\n  const out = {};\n"
        "  try { process.kill(1, 'SIGSTOP'); out.kill = 'done'; } catch (e) { out.kill = e.code; }\n"
        "  try { os.setPriority(1, 19); out.nice = 'done'; } catch (e) { out.nice = e.code; }\n"
        "  return out;\n}\n"
    )
    result = run_ok(pool, "node", code, "pid1-node")
    assert "done" not in result.result.values(), result.result


def test_no_earlier_result_or_output_is_found_in_a_later_jobs_memory(pool):
    """The next job is forked from the runner: scan its memory for what the last job returned and printed."""
    secret = "zq-hidden-" + "8512"
    # results and lines of a few KB: freed heap chunks of that size keep their bytes
    first = run(
        pool,
        "python",
        f"def main():\n    print('{secret}-out-' * 200)\n    return ['{secret}-result-' + 'x' * 100] * 60\n",
        "snoop2",
    )
    assert first.status == "succeeded"
    assert_not_in_next_jobs_memory(pool, first, secret, "snoop2")


# -- per-uid kernel budgets belong to one tenant ----------------------------------------

EXHAUST_MQUEUES = """
import ctypes, os, time
rt = ctypes.CDLL("librt.so.1", use_errno=True)
def main(hold_s):
    made = 0
    for i in range(64):
        if rt.mq_open(b"/hog-%d" % i, os.O_CREAT | os.O_RDWR, 0o600, None) < 0:
            break
        made += 1
    failed_with = ctypes.get_errno()
    time.sleep(hold_s)
    return {"made": made, "errno": failed_with}
"""
ONE_MQUEUE = """
import ctypes, os
rt = ctypes.CDLL("librt.so.1", use_errno=True)
def main():
    fd = rt.mq_open(b"/mine", os.O_CREAT | os.O_RDWR, 0o600, None)
    return {"fd": fd, "errno": ctypes.get_errno() if fd < 0 else 0}
"""


def test_one_tenants_message_queues_do_not_exhaust_another_tenants_budget(pool):
    hog = {}
    thread = threading.Thread(
        target=lambda: hog.update(r=run(pool, "python", EXHAUST_MQUEUES, "mq-hog", args=[3]))
    )
    thread.start()
    time.sleep(1.5)  # the hog holds every queue its uid may have
    other = run(pool, "python", ONE_MQUEUE, "mq-victim")
    thread.join()
    assert hog["r"].status == "succeeded", hog["r"].error
    assert 0 < hog["r"].result["made"] < 64 and hog["r"].result["errno"] != 0  # its own budget ran out
    assert other.status == "succeeded" and other.result["fd"] >= 0, other.result


# -- floods against the clock, and storage ------------------------------------------------

FLOODS = {
    (
        "python",
        "stdout",
    ): "import sys\ndef main():\n    line = 'y\\n' * 4096\n    while True:\n        sys.stdout.write(line)\n",
    ("python", "mixed"): (
        "import sys\ndef main():\n    line = 'y\\n' * 4096\n"
        "    while True:\n        sys.stdout.write(line)\n        sys.stderr.write(line)\n"
    ),
    (
        "node",
        "stdout",
    ): "function main() {\n  const line = 'y\\n'.repeat(4096);\n  for (;;) process.stdout.write(line);\n}\n",
    ("node", "mixed"): (
        "function main() {\n  const line = 'y\\n'.repeat(4096);\n"
        "  for (;;) { process.stdout.write(line); process.stderr.write(line); }\n}\n"
    ),
}


def _flood(pool, runtime, kind, **caps):
    def slow_store(lines):
        time.sleep(0.05)  # a busy database on the other end of every batch

    t0 = time.monotonic()
    result = run(
        pool,
        runtime,
        FLOODS[(runtime, kind)],
        f"flood-{runtime}-{kind}",
        on_output=slow_store,
        timeout_ms=3000,
        **caps,
    )
    return result, time.monotonic() - t0


@pytest.mark.parametrize("runtime, kind", sorted(FLOODS))
def test_the_time_limit_holds_under_an_output_flood_read_by_a_slow_host(pool, docker_client, runtime, kind):
    result, elapsed = _flood(pool, runtime, kind)  # the default log caps: 1 MiB, 10,000 lines
    assert result.status == "timed_out", (result.status, result.error)
    assert elapsed < 3.0 + 0.6, f"verdict after {elapsed:.1f} s for a 3 s limit"
    assert result.dropped_bytes > 0
    assert_next_job_clean(pool, runtime, f"flood-{runtime}-{kind}", docker_client)


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_the_time_limit_holds_even_with_no_log_caps_at_all(pool, runtime):
    """Every byte relayed, a slow host: what is still in the pipe at the limit is counted, not stored."""
    result, elapsed = _flood(pool, runtime, "mixed", max_log_bytes=1 << 40, max_log_lines=1 << 40)
    assert result.status == "timed_out", (result.status, result.error)
    assert elapsed < 3.0 + 1.5, f"verdict after {elapsed:.1f} s for a 3 s limit"


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_megabyte_of_newlines_makes_at_most_max_log_lines_lines(pool, runtime):
    code = {
        "python": "import sys\ndef main():\n    sys.stdout.write('\\n' * (1 << 20))\n    return 'done'\n",
        "node": "function main() { process.stdout.write('\\n'.repeat(1 << 20)); return 'done'; }\n",
    }[runtime]
    lines = []
    result = run(pool, runtime, code, f"newlines-{runtime}", on_output=lines.extend, max_log_lines=1000)
    assert result.status == "succeeded" and result.result == "done", result.error
    output = [line for line in lines if line.stream == "stdout"]
    assert len(output) == 1000
    assert result.dropped_bytes == (1 << 20) - 1000
    assert any("further output is dropped" in line.text for line in lines if line.stream == "system")
    assert len(lines) <= 1003  # the lines plus at most the markers


def test_long_lines_split_by_the_host_still_respect_the_line_cap(pool):
    code = "import sys\ndef main():\n    sys.stdout.write('z' * (16384 * 50))\n    return 1\n"
    lines = []
    result = run(pool, "python", code, "longlines", on_output=lines.extend, max_log_lines=10)
    assert result.status == "succeeded"
    assert len([line for line in lines if line.stream == "stdout"]) == 10
    assert result.dropped_bytes == 16384 * 40


# -- a cell that cannot vouch for itself is never reused -------------------------------------


def test_a_cell_whose_cleanup_fails_is_retired_and_the_next_job_gets_a_fresh_one(pool, docker_client):
    first = run(pool, "python", "def main():\n    return 1\n", "unclean")
    container = docker_client.containers.get(first.container_id)
    done = {}
    job = threading.Thread(
        target=lambda: done.update(
            r=run(pool, "python", "import time\ndef main():\n    time.sleep(1.5)\n    return 2\n", "unclean")
        )
    )
    job.start()
    time.sleep(0.5)
    # something the job's uid cannot remove appears during the job (here: put there from outside)
    exit_code, _ = container.exec_run(["python3", "-c", "open('/tmp/stuck', 'w').write('x')"], user="0")
    assert exit_code == 0
    job.join()
    assert done["r"].status == "succeeded" and done["r"].container_id == first.container_id
    after = run(pool, "python", "import os\ndef main():\n    return os.listdir('/tmp')\n", "unclean")
    assert after.status == "succeeded" and after.result == []
    assert after.container_id != first.container_id
    pool.flush()
    assert first.container_id not in {c.id for c in docker_client.containers.list(all=True)}


def test_a_large_request_reaches_a_runner_that_is_still_starting_node(pool):
    """The previous read leaves a 0.25 s poll timeout on the socket; a body that must wait for a
    booting node process once timed out there."""
    quick = "function main(s) { return s.length; }"
    limits = {"cpus": 0.25}  # node boots slowly on a quarter CPU
    first = run(pool, "node", quick, "bigbody", args=["x"], **limits)
    assert first.status == "succeeded"
    cancel = threading.Event()  # a cancellable run reads with the short poll timeout
    pool.run(
        RunSpec(runtime="node", code=quick, args=["y"], tenant="bigbody", limits=Limits(**limits)),
        None,
        cancel,
    )
    big = "z" * (4 << 20)
    second = run(pool, "node", quick, "bigbody", args=[big], **limits)
    assert second.status == "succeeded" and second.result == len(big), second.error
