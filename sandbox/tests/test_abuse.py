"""Hostile code against the real sandbox: each attack ends with the right verdict within its
limit plus a small margin, leaves nothing behind, and the tenant's next job runs clean."""

from __future__ import annotations

import resource
import time

import pytest

from sandbox import Egress, Limits, RunSpec, SecretValue

pytestmark = pytest.mark.docker

TIMEOUT_MS = 2000
MARGIN_S = 2.0  # verdict within the limit plus this

PY_PROBE = """
import os
def main():
    me = os.getpid()
    procs = sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, me))
    return {"procs": procs, "tmp": sorted(os.listdir('/tmp')), "shm": sorted(os.listdir('/dev/shm'))}
"""
JS_PROBE = """
const fs = require('fs');
function main() {
  const procs = fs.readdirSync('/proc').filter(p => /^\\d+$/.test(p)).map(Number)
    .filter(p => p !== 1 && p !== process.pid).sort((a, b) => a - b);
  return { procs, tmp: fs.readdirSync('/tmp').sort(), shm: fs.readdirSync('/dev/shm').sort() };
}
"""
PROBES = {"python": PY_PROBE, "node": JS_PROBE}


def _ids(pool) -> set:
    return {c.id for cells in list(pool._idle.values()) + list(pool._spares.values()) for c in cells}


def attack(pool, runtime: str, code: str, tenant: str, **limits):
    lines = []
    opts = {"timeout_ms": TIMEOUT_MS, **limits}
    t0 = time.monotonic()
    result = pool.run(RunSpec(runtime=runtime, code=code, tenant=tenant, limits=Limits(**opts)), lines.extend)
    elapsed = time.monotonic() - t0
    assert elapsed < opts["timeout_ms"] / 1000 + MARGIN_S, f"verdict took {elapsed:.1f}s"
    return result, lines


def assert_next_job_clean(pool, runtime: str, tenant: str, docker_client) -> None:
    probe = pool.run(
        RunSpec(runtime=runtime, code=PROBES[runtime], tenant=tenant, limits=Limits(timeout_ms=TIMEOUT_MS))
    )
    assert probe.status == "succeeded", probe.error
    leftovers = probe.result
    if runtime == "node":
        # the node runner keeps one pre-started node process for the next job: nothing else may exist
        assert len(leftovers["procs"]) <= 1, leftovers
    else:
        assert leftovers["procs"] == [], leftovers
    assert leftovers["tmp"] == [] and leftovers["shm"] == [], leftovers
    pool.flush()
    mine = docker_client.containers.list(all=True, filters={"label": f"lambdasite.pool={pool.pool_id}"})
    known = _ids(pool)
    assert {c.id for c in mine} <= known, "a container was left behind"


CASES = {
    # name: {runtime: (code, accepted statuses, extra check or None)}
    "fork_bomb": {
        "python": ("import os\ndef main():\n    while True:\n        os.fork()\n", {"failed", "timed_out"}),
        "node": (
            "const cp = require('child_process');\nfunction main() {\n  for (;;) { try { "
            "cp.spawn('/bin/sh', ['-c', 'sleep 100']); } catch (e) {} }\n}\n",
            {"failed", "timed_out", "killed"},  # node's spawn bookkeeping may hit the memory limit first
        ),
    },
    "memory_bomb": {
        "python": (
            "def main():\n    chunks = []\n    while True:\n        chunks.append(b'x' * (8 << 20))\n",
            {"killed"},
        ),
        "node": (
            "function main() {\n  const chunks = [];\n  for (;;) { "
            "chunks.push(Buffer.alloc(8 << 20, 1)); }\n}\n",
            {"killed", "failed"},
        ),
    },
    "infinite_loop": {
        "python": ("def main():\n    while True:\n        pass\n", {"timed_out"}),
        "node": ("function main() { for (;;) {} }\n", {"timed_out"}),
    },
    "cpu_threads": {
        "python": (
            "import threading\ndef burn():\n    while True:\n        pass\n"
            "def main():\n    for _ in range(16):\n        threading.Thread(target=burn, "
            "daemon=True).start()\n    burn()\n",
            {"timed_out"},
        ),
        "node": (
            "const { Worker } = require('worker_threads');\nfunction main() {\n"
            "  for (let i = 0; i < 8; i++) new Worker('for(;;){}', { eval: true });\n  for (;;) {}\n}\n",
            {"timed_out", "failed"},
        ),
    },
    "fill_tmp": {
        "python": (
            "def main():\n    with open('/tmp/fill', 'wb') as f:\n        while True:\n      "
            "      f.write(b'x' * (1 << 20))\n",
            {"failed"},
        ),
        "node": (
            "const fs = require('fs');\nfunction main() {\n  const fd = fs.openSync('/tmp/fill', 'w');\n"
            "  const mb = Buffer.alloc(1 << 20, 120);\n  for (;;) fs.writeSync(fd, mb);\n}\n",
            {"failed"},
        ),
    },
    "thousands_of_files": {
        "python": (
            "def main():\n    return [open('/tmp/f%d' % i, 'w') for i in range(5000)] and 'opened'\n",
            {"failed"},
        ),
        "node": (
            "const fs = require('fs');\nfunction main() {\n  for (let i = 0; i < 5000; i++) "
            "fs.openSync('/tmp/f' + i, 'w');\n  return 'opened';\n}\n",
            {"failed"},
        ),
    },
    "sleep_forever": {
        "python": ("import time\ndef main():\n    time.sleep(10**6)\n", {"timed_out"}),
        "node": (
            "async function main() { await new Promise(() => setInterval(() => {}, 1000)); }\n",
            {"timed_out"},
        ),
    },
    "kill_the_runner": {
        "python": (
            "import os, signal\ndef main():\n    for sig in (signal.SIGSTOP, signal.SIGKILL, "
            "signal.SIGTERM):\n"
            "        try:\n            os.kill(1, sig)\n        except OSError:\n            pass\n"
            "    try:\n        os.kill(-1, signal.SIGKILL)\n    except OSError:\n        "
            "pass\n    return 'survived'\n",
            {"succeeded"},
        ),
        "node": (
            "function main() {\n  for (const s of ['SIGSTOP', 'SIGKILL', 'SIGTERM']) { try { "
            "process.kill(1, s); } catch (e) {} }\n"
            "  try { process.kill(-1, 'SIGKILL'); } catch (e) {}\n  return 'survived';\n}\n",
            {"succeeded", "failed"},
        ),
    },
    "leave_a_spy_daemon": {
        "python": (
            "import os, time\ndef main():\n    if os.fork() == 0:\n        os.setsid()\n     "
            "   if os.fork() == 0:\n"
            "            while True:\n                time.sleep(0.01)\n        "
            "os._exit(0)\n    open('/tmp/spy-was-here', 'w').write('x')\n    return "
            "'planted'\n",
            {"succeeded"},
        ),
        "node": (
            "const cp = require('child_process');\nconst fs = require('fs');\nfunction main() {\n"
            "  cp.spawn('/bin/sh', ['-c', 'while true; do sleep 0.01; done'], { detached: "
            "true, stdio: 'ignore' }).unref();\n"
            "  fs.writeFileSync('/tmp/spy-was-here', 'x');\n  return 'planted';\n}\n",
            {"succeeded"},
        ),
    },
    "zombies": {
        "python": (
            "import os\ndef main():\n    for _ in range(20):\n        if os.fork() == 0:\n   "
            "         os._exit(0)\n    return 'left zombies'\n",
            {"succeeded"},
        ),
        "node": (
            "const cp = require('child_process');\nfunction main() {\n  for (let i = 0; i < "
            "20; i++) cp.spawn('/bin/true');\n  return 'spawned';\n}\n",
            {"succeeded"},
        ),
    },
}
ABUSE = [(name, runtime) for name, runtimes in CASES.items() for runtime in runtimes]


@pytest.mark.parametrize("name, runtime", ABUSE)
def test_abuse_ends_right_and_leaves_nothing(pool, docker_client, name, runtime):
    code, statuses = CASES[name][runtime]
    tenant = f"abuse-{name}"
    result, _ = attack(pool, runtime, code, tenant)
    assert result.status in statuses, (result.status, result.error)
    if name == "memory_bomb" and runtime == "python":
        assert result.error["type"] == "MemoryLimitExceeded"
    if name in ("infinite_loop", "sleep_forever", "cpu_threads") and result.status == "timed_out":
        assert result.duration_ms >= TIMEOUT_MS - 50
    if name == "kill_the_runner" and runtime == "python":
        assert result.result == "survived"
    assert_next_job_clean(pool, runtime, tenant, docker_client)


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_gigabyte_of_stdout_is_capped_with_a_marker_and_the_job_goes_on(pool, docker_client, runtime):
    code = {
        "python": "import sys\ndef main():\n    chunk = ('y' * 1023 + '\\n"
        "') * 1024\n    for _ in range(1024):\n        sys.stdout.write(chunk)\n    "
        "return 'done'\n",
        "node": "function main() {\n  const chunk = ('y'.repeat(1023) + '\\n"
        "').repeat(1024);\n  for (let i = 0; i < 1024; i++) "
        "process.stdout.write(chunk);\n  return 'done';\n}\n",
    }[runtime]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result, lines = attack(pool, runtime, code, f"flood-{runtime}", timeout_ms=20000, max_log_bytes=64 * 1024)
    assert result.status == "succeeded" and result.result == "done", result.error
    assert result.log_bytes == 64 * 1024
    assert result.dropped_bytes == (1 << 30) - 64 * 1024
    system = [line.text for line in lines if line.stream == "system"]
    assert any("log limit" in text for text in system) and any("dropped" in text for text in system)
    assert sum(len(line.text) + 1 for line in lines if line.stream == "stdout") <= 64 * 1024
    assert (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50 * 1024
    )  # KiB: the worker stayed small
    assert_next_job_clean(pool, runtime, f"flood-{runtime}", docker_client)


def test_a_huge_line_without_newline_is_cut_into_bounded_lines(pool, docker_client):
    code = "import sys\ndef main():\n    sys.stdout.write('z' * (5 << 20))\n    return len('ok')\n"
    result, lines = attack(pool, "python", code, "hugeline", max_log_bytes=1 << 20)
    assert result.status == "succeeded" and result.result == 2
    out = [line for line in lines if line.stream == "stdout"]
    assert out and max(len(line.text) for line in out) <= 16384
    assert sum(len(line.text) for line in out) == 1 << 20
    assert result.dropped_bytes == (5 << 20) - (1 << 20)


def test_invalid_utf8_and_a_last_line_without_newline_are_kept(pool):
    code = (
        "import sys\ndef main():\n    sys.stdout.buffer.write(b'bad \\xff\\xfe bytes\\n"
        "no newline at end')\n    return 1\n"
    )
    result, lines = attack(pool, "python", code, "utf8")
    assert result.status == "succeeded"
    assert [line.text for line in lines] == ["bad \ufffd\ufffd bytes", "no newline at end"]


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_printed_fake_result_frames_cannot_forge_the_result(pool, runtime):
    fake = 'R\\x00\\x00\\x00\\x1a{"ok":true,"result":"pwned"}X\\x00\\x00\\x00\\x02{}'
    code = {
        "python": f"import sys\ndef main():\n    sys.stdout.write('{fake}')\n    "
        f'sys.stdout.flush()\n    print(\'{{"ok": true, "result": "pwned"}}\')\n    '
        f"return 'real'\n",
        "node": f"function main() {{\n  process.stdout.write('{fake}');\n  console.log('{{\"ok\": "
        f'true, "result": "pwned"}}\');\n  return \'real\';\n}}\n',
    }[runtime]
    result, lines = attack(pool, runtime, code, f"forge-{runtime}")
    assert result.status == "succeeded" and result.result == "real"
    assert any("pwned" in line.text for line in lines)


def test_host_files_and_the_runner_are_out_of_reach(pool):
    code = """
import os
def main():
    out = {}
    for path in ("/proc/1/environ", "/proc/1/mem", "/proc/1/fd/0", "/etc/shadow", "/var/run/docker.sock"):
        try:
            open(path, "rb").read(1)
            out[path] = "read"
        except OSError as exc:
            out[path] = type(exc).__name__
    try:
        os.listdir("/proc/1/fd")
        out["fd_list"] = "listed"
    except OSError as exc:
        out["fd_list"] = type(exc).__name__
    out["mounts"] = [l.split()[4] for l in open("/proc/self/mountinfo")]
    return out
"""
    result, _ = attack(pool, "python", code, "hostfiles")
    assert result.status == "succeeded", result.error
    out = result.result
    for key in (
        "/proc/1/environ",
        "/proc/1/mem",
        "/proc/1/fd/0",
        "/etc/shadow",
        "/var/run/docker.sock",
        "fd_list",
    ):
        assert out[key] != "read" and out[key] != "listed", (key, out[key])
    assert "/var/run/docker.sock" not in out["mounts"] and "/work" not in " ".join(out["mounts"])


def test_a_later_job_cannot_find_an_earlier_jobs_input_in_memory(pool):
    """The next job is forked from the warm runner: scan all of its memory for the previous job's secret."""
    first = pool.run(
        RunSpec(
            runtime="python",
            code="def main(s):\n    return len(s)\n",
            args=["xq-secret-4711"],
            tenant="snoop",
        )
    )
    assert first.status == "succeeded"
    assert_not_in_next_jobs_memory(pool, first, "xq-secret-4711", "snoop")


MEMORY_SCAN = """
import ctypes, re
def main():
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: lets this job read its own /proc/self/mem
    needle = {head!r} + {rest!r}       # never the whole secret, so the scan cannot find itself
    tail = bytes({tail!r})
    seen = found = 0
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            if "r" not in perms or line.rstrip().endswith(("[vvar]", "[vsyscall]")):
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            seen += len(data)
            for m in re.finditer(re.escape(needle), data):
                if data[m.end():m.end() + 4] == tail:
                    found += 1
    return {{"seen": seen, "found": found}}
"""


def assert_not_in_next_jobs_memory(pool, first, secret: str, tenant: str) -> None:
    """The tenant's next job, forked from the same warm runner as ``first``, scans all of its memory and
    finds no trace of ``secret`` (whose last four characters are its tail)."""
    needle = secret[:-4].encode()
    code = MEMORY_SCAN.format(head=needle[:6], rest=needle[6:], tail=list(secret[-4:].encode()))
    second = pool.run(RunSpec(runtime="python", code=code, tenant=tenant, limits=Limits(timeout_ms=10000)))
    assert second.status == "succeeded", second.error
    assert second.reused and second.container_id == first.container_id
    assert second.result["seen"] > 1 << 20
    assert second.result["found"] == 0


# -- the door: every way around the egress proxy, and secrets that outlive their job -----------------

EGRESS_AROUND = """
import os, signal, socket
def relay_pid():
    for pid in (p for p in os.listdir("/proc") if p.isdigit() and p != "1"):
        try:
            uid = next(l for l in open(f"/proc/{pid}/status") if l.startswith("Uid:")).split()[1]
        except (OSError, StopIteration):
            continue
        if int(uid) == os.getuid() - 1:
            return int(pid)
def main():
    out = {}
    for name, family, address in (("v4", socket.AF_INET, ("198.18.0.2", 443)),
                                  ("v6", socket.AF_INET6, ("2001:db8::1", 443, 0, 0))):
        sock = socket.socket(family)
        sock.settimeout(2)
        try:
            sock.connect(address)
            out[name] = "connected"
        except OSError as exc:
            out[name] = exc.errno
    try:
        socket.getaddrinfo("api.lab.test", 443)
        out["dns"] = "resolved"
    except OSError:
        out["dns"] = "failed"
    door = socket.socket(socket.AF_UNIX)
    try:
        door.connect("/run/lambdasite/egress/proxy.sock")
        out["door_socket"] = "connected"
    except OSError as exc:
        out["door_socket"] = exc.errno
    try:
        os.kill(relay_pid(), signal.SIGKILL)
        out["kill_relay"] = "killed"
    except OSError as exc:
        out["kill_relay"] = exc.errno
    for path in ("/proc/%d/environ" % relay_pid(), "/proc/%d/mem" % relay_pid()):
        try:
            open(path, "rb").read(1)
            out[path.split("/")[-1]] = "read"
        except OSError as exc:
            out[path.split("/")[-1]] = exc.errno
    relay = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    relay.sendall(b"CONNECT api.lab.test:443 HTTP/1.1\\r\\n\\r\\n")
    out["relay_alive"] = relay.recv(100).split(b"\\r\\n")[0].decode()
    return out
"""


def test_a_job_cannot_get_around_its_door(egress_pool, internet):
    """No route but loopback, no DNS, the door's socket not its uid's to open, the relay not its
    uid's to kill or read: the only way out is through the proxy."""
    spec = RunSpec(
        runtime="python",
        code=EGRESS_AROUND,
        tenant="abuse-door",
        uid=200_301,
        egress=Egress("allowlist", ("api.lab.test:443",)),
        limits=Limits(timeout_ms=10000),
    )
    result = egress_pool.run(spec)
    assert result.status == "succeeded", result.error
    EACCES, EPERM, ENETUNREACH = 13, 1, 101
    out = result.result
    assert out["v4"] == ENETUNREACH and out["v6"] in (ENETUNREACH, 99)  # 99: no IPv6 address at all
    assert out["dns"] == "failed"
    assert out["door_socket"] == EACCES and out["kill_relay"] == EPERM
    assert out["environ"] == EACCES and out["mem"] == EACCES
    assert out["relay_alive"] == "HTTP/1.1 200 Connection Established"


PROXY_TRICKS = {
    # name: (what the job sends to the proxy, the reason the proxy records)
    "worker_loopback": ("CONNECT 127.0.0.1:8000 HTTP/1.1\r\n\r\n", "loopback"),
    "metadata": ("GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
                 "link-local"),
    "hex_loopback": ("GET http://0x7f.1/ HTTP/1.1\r\nHost: 0x7f.1\r\n\r\n", "loopback"),
    "decimal_loopback": ("CONNECT 2130706433:443 HTTP/1.1\r\n\r\n", "loopback"),
    "mapped_loopback": ("CONNECT [::ffff:127.0.0.1]:443 HTTP/1.1\r\n\r\n", "IPv4-mapped"),
    "nat64_metadata": ("CONNECT [64:ff9b::a9fe:a9fe]:80 HTTP/1.1\r\n\r\n", "NAT64"),
    "userinfo_confusion": ("GET http://api.lab.test@127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                           "loopback"),
    "fragment_confusion": ("GET http://127.0.0.1#@api.lab.test/ HTTP/1.1\r\nHost: api.lab.test\r\n\r\n",
                           "loopback"),
    "smtp": ("CONNECT api.lab.test:25 HTTP/1.1\r\n\r\n", "port 25"),
    "host_spoofing": ("GET http://api.lab.test/ HTTP/1.1\r\nHost: other.lab.test\r\n\r\n", "Host header"),
    "smuggling": ("POST http://api.lab.test/ HTTP/1.1\r\nHost: api.lab.test\r\nContent-Length: 4\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n", "ambiguous"),
    "localhost_name": ("CONNECT localhost:6379 HTTP/1.1\r\n\r\n", "loopback"),
}  # fmt: skip


def test_the_proxy_refuses_every_trick_even_with_public_egress(egress_pool, internet):
    heads = [head for head, _ in PROXY_TRICKS.values()]
    code = f"""
import socket
def main():
    answers = []
    for head in {heads!r}:
        sock = socket.create_connection(("127.0.0.1", 3128), timeout=5)
        sock.sendall(head.encode())
        answers.append(sock.recv(100).split(b"\\r\\n")[0].decode())
        sock.close()
    return answers
"""
    internet.clear()
    spec = RunSpec(runtime="python", code=code, tenant="abuse-tricks", uid=200_303, egress=Egress("public"))
    result = egress_pool.run(spec)
    assert result.status == "succeeded", result.error
    assert result.result == ["HTTP/1.1 403 Forbidden"] * len(PROXY_TRICKS)
    for (name, (_, reason)), conn in zip(PROXY_TRICKS.items(), result.connections, strict=True):
        assert conn.verdict == "denied" and reason in conn.reason, (name, conn)
    assert internet.requests() == []


TAMPER = """
import os
def main():
    print("xq-output-8812")
    for change in (lambda: open("/run/secrets/EXTRA", "w"), lambda: open("/run/secrets/TOKEN", "w"),
                   lambda: os.rename("/run/secrets/TOKEN", "/run/secrets/T")):
        try:
            change()
            return "changed"
        except OSError:
            pass
"""


def test_a_jobs_secret_files_and_output_do_not_outlive_it(egress_pool):
    """A job cannot change the secret files (the next job of the same cell, same tenant and secrets,
    finds them as they were), and the next job finds no trace of its output in memory (masking's
    buffers are zeroed too)."""
    secrets = (SecretValue("TOKEN", "tok-abuse-0123456789", 1, "tok"),)
    first = egress_pool.run(
        RunSpec(
            runtime="python",
            code=TAMPER,
            tenant="abuse-secrets",
            uid=200_305,
            secrets=secrets,
        )
    )
    assert first.status == "succeeded" and first.result is None, (first.result, first.error)
    needle = b"xq-output-"
    code = MEMORY_SCAN.format(head=needle[:6], rest=needle[6:], tail=list(b"8812"))
    code = code.replace(
        "def main():",
        "import os\ndef main():\n    files = sorted(os.listdir('/run/secrets'))"
        " + [open('/run/secrets/TOKEN').read() == os.environ['TOKEN']]",
    )
    code = code.replace(
        'return {"seen": seen, "found": found}', 'return {"seen": seen, "found": found, "files": files}'
    )
    second = egress_pool.run(
        RunSpec(runtime="python", code=code, tenant="abuse-secrets", uid=200_305, secrets=secrets,
                limits=Limits(timeout_ms=10000))
    )  # fmt: skip
    assert second.status == "succeeded", second.error
    assert second.reused and second.container_id == first.container_id
    assert second.result["files"] == ["TOKEN", True]
    assert second.result["seen"] > 1 << 20 and second.result["found"] == 0
