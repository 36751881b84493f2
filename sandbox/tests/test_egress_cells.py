"""The door, secrets and masking in real cells, both runtimes, through the sandbox's run API: the
egress proxy is real, the "internet" is the test's namespace at 198.18.0.0/15 (allowed by
EGRESS_ALLOW_CIDRS as an operator would), and the test CA reaches the job only as a secret file.

What a job with egress can do (its HTTP clients, unmodified, through HTTP_PROXY and friends) and
what it cannot (anything off its list, anything in the deny table, a raw socket, another name on
an allowed address); what a job without egress has (no door at all); how its secrets reach it
(variables and /run/secrets files, never the container's configuration) and never leave it (the
runner masks them in the output and the error)."""

from __future__ import annotations

import json
import time

import pytest

from sandbox import Egress, Limits, RunSpec, SecretValue

from .internet import SERVER

pytestmark = pytest.mark.docker

TOKEN = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
UID = 200_201  # the tenant's job uid (its runner: one less)
ALLOW = ("api.lab.test:443", "api.lab.test:80", "rebind.lab.test:80")


def ca_secret(internet) -> SecretValue:
    return SecretValue("TEST_CA", internet.tls["ca"].read_text(), 1, "test-ca")


def spec(runtime, code, internet, *, egress=None, secrets=None, env=None, tenant="t-egress", **limits):
    return RunSpec(
        runtime=runtime,
        code=code,
        tenant=tenant,
        uid=UID if tenant == "t-egress" else UID + 2,
        egress=egress if egress is not None else Egress("allowlist", ALLOW),
        secrets=(SecretValue("TOKEN", TOKEN, 7, "stripe"), ca_secret(internet))
        if secrets is None
        else secrets,
        env={"SSL_CERT_FILE": "/run/secrets/TEST_CA", "REGION": "eu-test"} if env is None else env,
        labels={"lambdasite.job": "job-e", "lambdasite.attempt": "1"},
        limits=Limits(timeout_ms=8000, **limits),
    )


def run(pool, *args, **kwargs):
    lines = []
    result = pool.run(spec(*args, **kwargs), lines.extend)
    return result, lines


PY_GET = """
import os, urllib.request, urllib.error
def main(url):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["TOKEN"]})
    try:
        return {"ok": urllib.request.urlopen(req, timeout=5).read().decode()}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code}
    except Exception as exc:
        return {"error": repr(exc)}
"""

JS_GET = """
const fs = require('fs'), tls = require('tls');
async function main(url) {
  tls.setDefaultCACertificates([fs.readFileSync('/run/secrets/TEST_CA', 'utf8')]);
  try {
    const r = await fetch(url, { headers: { Authorization: 'Bearer ' + process.env.TOKEN } });
    return r.ok ? { ok: await r.text() } : { status: r.status };
  } catch (e) {
    return { error: String(e) + ' ' + String(e.cause) };
  }
}
"""
GET = {"python": PY_GET, "node": JS_GET}


def get_url(pool, runtime, internet, url, **kwargs):
    lines = []
    s = spec(runtime, GET[runtime], internet, **kwargs)
    from dataclasses import replace

    result = pool.run(replace(s, args=[url]), lines.extend)
    assert result.status == "succeeded", result.error
    return result


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_an_allowed_https_request_succeeds_and_the_server_sees_the_secret(egress_pool, internet, runtime):
    internet.clear()
    result = get_url(egress_pool, runtime, internet, "https://api.lab.test/hello")
    assert result.result == {"ok": f"hello from {SERVER}"}
    [seen] = internet.requests(wait_s=2)
    assert ["Authorization", f"Bearer {TOKEN}"] in seen["headers"] and seen["tls"]
    [conn] = result.connections
    assert (conn.host, conn.port, conn.address, conn.verdict) == ("api.lab.test", 443, SERVER, "allowed")
    assert conn.bytes_sent > 0 and conn.bytes_received > 0
    assert result.secret_revisions == (("stripe", 7), ("test-ca", 1))


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_plain_http_to_an_allowed_host_succeeds(egress_pool, internet, runtime):
    result = get_url(egress_pool, runtime, internet, "http://api.lab.test/hello")
    assert result.result == {"ok": f"hello from {SERVER}"}
    assert [c.verdict for c in result.connections] == ["allowed"]


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_host_off_the_list_is_refused_and_the_reason_recorded(egress_pool, internet, runtime):
    internet.clear()
    result = get_url(egress_pool, runtime, internet, "https://other.lab.test/hello")
    assert "ok" not in result.result  # python: 403 on CONNECT is an error; node: fetch fails
    [conn] = result.connections
    assert (conn.host, conn.verdict, conn.reason) == (
        "other.lab.test",
        "denied",
        "not on the egress allowlist",
    )
    assert internet.requests() == []


@pytest.mark.parametrize("runtime", ["python", "node"])
@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://127.0.0.1:8000/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://[::1]:6379/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://localhost:5432/", "loopback"),
    ],
)
def test_the_deny_table_holds_even_for_public_egress(egress_pool, internet, runtime, url, reason):
    result = get_url(egress_pool, runtime, internet, url, egress=Egress("public"))
    assert "ok" not in result.result
    assert [c.verdict for c in result.connections] == ["denied"] and reason in result.connections[0].reason


PY_RAW = """
import os, socket
def main():
    out = {"proxy_vars": sorted(k for k in os.environ if "proxy" in k.lower()),
           "door": os.path.exists("/run/lambdasite/egress")}
    for target in [("198.18.0.2", 80), ("198.18.0.2", 443), ("127.0.0.1", 3128)]:
        try:
            with socket.create_connection(target, timeout=3) as conn:
                # nothing sent, then read to the end: the proxy has answered (and recorded) the probe
                # before the job returns, instead of maybe after its attempt was closed
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(4096):
                    pass
            out[str(target)] = "connected"
        except OSError as exc:
            out[str(target)] = exc.errno
    try:
        socket.getaddrinfo("api.lab.test", 443)
        out["dns"] = "resolved"
    except OSError as exc:
        out["dns"] = "failed"
    return out
"""
JS_RAW = """
const net = require('net'), fs = require('fs'), dns = require('dns');
function tryConnect(port, host) {
  return new Promise((res) => {
    const s = net.connect({ port, host, timeout: 3000 });
    // nothing sent, then read to the end: the proxy has answered (and recorded) the probe first
    s.on('connect', () => { s.end(); s.resume(); s.on('close', () => res('connected')); });
    s.on('error', (e) => res(e.code));
    s.on('timeout', () => { s.destroy(); res('timeout'); });
  });
}
async function main() {
  const out = { proxy_vars: Object.keys(process.env).filter((k) => /proxy/i.test(k)).sort(),
                door: fs.existsSync('/run/lambdasite/egress') };
  out.raw80 = await tryConnect(80, '198.18.0.2');
  out.raw443 = await tryConnect(443, '198.18.0.2');
  out.loop = await tryConnect(3128, '127.0.0.1');
  out.dns = await new Promise((res) => dns.lookup('api.lab.test', (e) => res(e ? 'failed' : 'resolved')));
  return out;
}
"""
ENETUNREACH, ECONNREFUSED, EACCES, EPERM = 101, 111, 13, 1


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_without_egress_there_is_no_door_no_proxy_and_no_route(egress_pool, internet, runtime):
    code = {"python": PY_RAW, "node": JS_RAW}[runtime]
    result, _ = run(egress_pool, runtime, code, internet, egress=Egress.NONE, secrets=(), env={})
    assert result.status == "succeeded", result.error
    out = result.result
    assert out["proxy_vars"] == [] and out["door"] is False and out["dns"] == "failed"
    if runtime == "python":
        assert [out["('198.18.0.2', 80)"], out["('127.0.0.1', 3128)"]] == [ENETUNREACH, ECONNREFUSED]
    else:
        assert [out["raw80"], out["loop"]] == ["ENETUNREACH", "ECONNREFUSED"]
    assert result.connections == ()


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_client_that_ignores_the_proxy_finds_no_route(egress_pool, internet, runtime):
    code = {"python": PY_RAW, "node": JS_RAW}[runtime]
    result, _ = run(egress_pool, runtime, code, internet)
    out = result.result
    assert out["door"] is True and "HTTPS_PROXY" in out["proxy_vars"] and "NO_PROXY" in out["proxy_vars"]
    if runtime == "python":
        assert out["('198.18.0.2', 80)"] == out["('198.18.0.2', 443)"] == ENETUNREACH
        assert out["('127.0.0.1', 3128)"] == "connected"  # the door's port: only the proxy is behind it
    else:
        assert out["raw80"] == out["raw443"] == "ENETUNREACH" and out["loop"] == "connected"
    assert out["dns"] == "failed"  # cells have no DNS: only the proxy resolves
    assert [c.reason for c in result.connections] == ["malformed request"]  # the probe of the port itself


PY_TUNNEL = """
import socket, ssl
def tunnel(target, server_hostname, request):
    sock = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    sock.sendall(f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n".encode())
    head = sock.recv(4096)
    if not head.startswith(b"HTTP/1.1 200"):
        return head.decode().split("\\r\\n")[0]
    if server_hostname is None:
        sock.sendall(request)
        return sock.recv(65536).decode() or "closed"
    ctx = ssl.create_default_context(cafile="/run/secrets/TEST_CA")
    ctx.check_hostname = False  # the job may lie about the name; the proxy must not let it
    try:
        tls = ctx.wrap_socket(sock, server_hostname=server_hostname)
        tls.sendall(request)
        return tls.recv(65536).decode() or "closed"
    except (OSError, ssl.SSLError) as exc:
        return "failed: " + type(exc).__name__

def plain(head):
    sock = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    sock.sendall(head.encode())
    return sock.recv(65536).decode().split("\\r\\n")[0]

SPOOFED = b"GET / HTTP/1.1\\r\\nHost: other.lab.test\\r\\n\\r\\n"

def main():
    return {
        "sni": tunnel("api.lab.test:443", "other.lab.test", SPOOFED),
        "host": plain("GET http://api.lab.test/ HTTP/1.1\\r\\nHost: other.lab.test\\r\\n\\r\\n"),
        "tunnel80": tunnel("api.lab.test:80", None, SPOOFED),
    }
"""


def test_a_tls_name_or_a_host_header_other_than_the_allowed_host_is_refused(egress_pool, internet):
    internet.clear()
    result, _ = run(egress_pool, "python", PY_TUNNEL, internet)
    assert result.status == "succeeded", result.error
    out = result.result
    assert out["sni"].startswith("failed") and out["host"] == "HTTP/1.1 403 Forbidden"
    assert out["tunnel80"] == "closed"
    reasons = [c.reason for c in result.connections]
    assert "TLS server name other.lab.test is not the CONNECT host" in reasons
    assert reasons.count("the Host header is not the request's host") == 2
    assert internet.requests() == []


def test_a_name_that_rebinds_to_loopback_is_refused_on_the_next_lookup(egress_pool, internet):
    egress_pool.names.set("rebind.lab.test", [SERVER], ["127.0.0.1"])
    first = get_url(egress_pool, "python", internet, "http://rebind.lab.test/hello")
    second = get_url(egress_pool, "python", internet, "http://rebind.lab.test/hello")
    assert first.result == {"ok": f"hello from {SERVER}"} and second.result == {"status": 403}
    assert first.connections[0].address == SERVER
    assert second.connections[0].reason.startswith("loopback")


PY_BIG = """
import http.client, urllib.request
def main():
    try:
        with urllib.request.urlopen("http://api.lab.test/big?n=5000000", timeout=5) as r:
            return {"got": len(r.read())}
    except http.client.IncompleteRead as exc:
        return {"got": len(exc.partial), "error": "IncompleteRead"}
"""


def test_the_byte_cap_cuts_a_download_midway(egress_pool, internet):
    egress_pool.proxy.max_bytes = 300_000
    try:
        result, _ = run(egress_pool, "python", PY_BIG, internet)
    finally:
        egress_pool.proxy.max_bytes = 256 << 20
    assert result.status == "succeeded", result.error
    assert 0 < result.result["got"] < 300_000 and "error" in result.result
    [conn] = result.connections
    assert (conn.verdict, conn.reason) == ("denied", "byte cap")
    assert conn.bytes_sent + conn.bytes_received == 300_000


PASSWORD = 'pa$$ "w0rd"/+é\\x'  # its URL-encoded and JSON-escaped forms differ from it
PY_LEAK = """
import base64, json, os, sys, urllib.parse
def main():
    token, password = os.environ["TOKEN"], os.environ["PASSWORD"]
    print("plain", token)
    print("b64", base64.b64encode(token.encode()).decode())
    print("json", json.dumps({"token": token, "p": password}))
    print("url", urllib.parse.quote(password, safe=""))
    half = len(token) // 2
    sys.stdout.write("split " + token[:half]); sys.stdout.flush()
    sys.stdout.write(token[half:] + " end\\n"); sys.stdout.flush()
    print("stderr", token, file=sys.stderr)
    print("short ok", os.environ["SHORT"])
    raise ValueError("bad token " + token)
"""
JS_LEAK = """
function main() {
  const token = process.env.TOKEN, password = process.env.PASSWORD;
  console.log('plain', token);
  console.log('b64', Buffer.from(token).toString('base64'));
  console.log('json', JSON.stringify({ token, p: password }));
  console.log('url', encodeURIComponent(password));
  const half = token.length >> 1;
  process.stdout.write('split ' + token.slice(0, half));
  process.stdout.write(token.slice(half) + ' end\\n');
  console.error('stderr', token);
  console.log('short ok', process.env.SHORT);
  throw new Error('bad token ' + token);
}
"""


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_printed_secret_and_its_encodings_are_masked_in_the_log_and_the_error(
    egress_pool, internet, runtime
):
    code = {"python": PY_LEAK, "node": JS_LEAK}[runtime]
    secrets = (
        SecretValue("TOKEN", TOKEN, 7, "stripe"),
        SecretValue("PASSWORD", PASSWORD, 2, "db"),
        SecretValue("SHORT", "abc", 1, "short"),
    )
    result, lines = run(egress_pool, runtime, code, internet, egress=Egress.NONE, secrets=secrets, env={})
    assert result.status == "failed"
    texts = [line.text for line in lines]
    everything = json.dumps([texts, result.error])
    for leak in (TOKEN, "c2tfdGVzd", "sk_test_4eC39", "w0rd", "pa%24"):
        assert leak not in everything, leak
    assert {"plain ***", "b64 ***", "stderr ***", "split *** end", "url ***"} <= set(texts), texts
    assert (
        'json {"token": "***", "p": "***"}' if runtime == "python" else 'json {"token":"***","p":"***"}'
    ) in texts
    assert "short ok abc" in texts  # three characters: too short to mask without masking everything
    assert "bad token ***" in result.error["message"]
    assert result.masked >= 9


PY_FILES = """
import os, stat
def main():
    st, d = os.stat("/run/secrets/TOKEN"), os.stat("/run/secrets")
    changes = []
    for change in (lambda: open("/run/secrets/TOKEN", "w"), lambda: os.unlink("/run/secrets/TOKEN"),
                   lambda: open("/run/secrets/MINE", "w"), lambda: os.chmod("/run/secrets/TOKEN", 0o666)):
        try:
            change()
            changes.append("done")
        except OSError as exc:
            changes.append(exc.errno)
    return {"file": [oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid],
            "dir": [oct(stat.S_IMODE(d.st_mode)), d.st_uid, d.st_gid], "me": [os.getuid(), os.getgid()],
            "same": open("/run/secrets/TOKEN").read() == os.environ["TOKEN"], "changes": changes,
            "listing": sorted(os.listdir("/run/secrets")), "region": os.environ.get("REGION")}
"""
JS_FILES = """
const fs = require('fs');
function main() {
  const st = fs.statSync('/run/secrets/TOKEN'), d = fs.statSync('/run/secrets');
  const changes = [];
  const path = '/run/secrets/TOKEN';
  const tries = [() => fs.writeFileSync(path, 'x'), () => fs.unlinkSync(path),
                 () => fs.writeFileSync('/run/secrets/MINE', 'x'), () => fs.chmodSync(path, 0o666)];
  for (const change of tries) {
    try { change(); changes.push('done'); } catch (e) { changes.push(-e.errno); }
  }
  return { file: ['0o' + (st.mode & 0o7777).toString(8), st.uid, st.gid],
           dir: ['0o' + (d.mode & 0o7777).toString(8), d.uid, d.gid],
           me: [process.getuid(), process.getgid()],
           same: fs.readFileSync('/run/secrets/TOKEN', 'utf8') === process.env.TOKEN, changes,
           listing: fs.readdirSync('/run/secrets').sort(), region: process.env.REGION };
}
"""


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_secrets_are_variables_and_files_of_the_jobs_uid_alone_and_never_in_the_containers_config(
    egress_pool, internet, docker_client, runtime
):
    code = {"python": PY_FILES, "node": JS_FILES}[runtime]
    for _ in range(2):  # and again in the warm cell: the files are the next job's too
        result, _ = run(egress_pool, runtime, code, internet)
        assert result.status == "succeeded", result.error
        out = result.result
        # the runner's files, readable by the job's group only; the job can change none of them
        assert out == {
            "file": ["0o440", UID - 1, UID], "dir": ["0o2750", UID - 1, UID], "me": [UID, UID],
            "same": True, "changes": [EACCES, EACCES, EACCES, EPERM], "listing": ["TEST_CA", "TOKEN"],
            "region": "eu-test",
        }  # fmt: skip
    assert result.reused
    container = docker_client.api.inspect_container(result.container_id)
    assert TOKEN not in json.dumps(container)
    assert not any(TOKEN in str(v) for v in (container["Config"]["Env"], container["Config"]["Labels"]))
    assert "/run/lambdasite/egress" in {m["Destination"] for m in container["Mounts"]}


def test_a_job_without_secrets_gets_no_secrets_mount(egress_pool, internet, docker_client):
    code = "import os\ndef main():\n    return os.path.exists('/run/secrets')\n"
    result, _ = run(egress_pool, "python", code, internet, egress=Egress.NONE, secrets=(), env={})
    assert result.result is False
    container = docker_client.api.inspect_container(result.container_id)
    assert "/run/secrets" not in container["HostConfig"]["Tmpfs"] and container["Mounts"] == []


PY_FN = """
import os
AT_INIT = (os.environ.get("TOKEN"), open("/run/secrets/TOKEN").read(), os.environ.get("HTTPS_PROXY"))
def main():
    return {"init": AT_INIT[0] == os.environ["TOKEN"] and AT_INIT[1] == os.environ["TOKEN"],
            "proxy": AT_INIT[2], "file": open("/run/secrets/TOKEN").read() == os.environ["TOKEN"],
            "revision": os.environ["TOKEN"][-2:]}
"""
JS_FN = """
const fs = require('fs');
const AT_INIT = [process.env.TOKEN, fs.readFileSync('/run/secrets/TOKEN', 'utf8'), process.env.HTTPS_PROXY];
function main() {
  return { init: AT_INIT[0] === process.env.TOKEN && AT_INIT[1] === process.env.TOKEN, proxy: AT_INIT[2],
           file: fs.readFileSync('/run/secrets/TOKEN', 'utf8') === process.env.TOKEN,
           revision: process.env.TOKEN.slice(-2) };
}
"""


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_function_sees_its_secrets_at_initialisation_and_a_rotation_retires_its_warm_cells(
    egress_pool, internet, runtime
):
    from dataclasses import replace

    from sandbox import FunctionRef

    code = {"python": PY_FN, "node": JS_FN}[runtime]
    ref = FunctionRef(key=f"fn-secrets-{runtime}-{time.time_ns()}", code=code)

    def invoke(revision):
        secrets = (SecretValue("TOKEN", f"{TOKEN}-r{revision}", revision, "stripe"),)
        base = spec(runtime, "", internet, secrets=secrets, env={})
        result = egress_pool.run(replace(base, function=ref))
        assert result.status == "succeeded", result.error
        return result

    first, second = invoke(1), invoke(1)
    assert first.result == second.result == {
        "init": True, "proxy": "http://127.0.0.1:3128", "file": True, "revision": "r1"
    }  # fmt: skip
    assert second.reused and second.container_id == first.container_id
    rotated = invoke(2)
    assert rotated.result["revision"] == "r2" and rotated.container_id != first.container_id
    assert rotated.secret_revisions == (("stripe", 2),)
    egress_pool.flush()
    cells = [c.id for cells in egress_pool._idle.values() for c in cells]
    assert first.container_id not in cells  # retired: the old revision never serves again


JS_SPLIT_STDERR = """
function main() {
  process.stderr.write('begin ' + process.env.TOKEN.slice(0, 5));
  process.stderr.write(process.env.TOKEN.slice(5));
  return 1;
}
"""


def test_a_secret_at_the_end_without_newline_is_masked(egress_pool, internet):
    secrets = (SecretValue("TOKEN", TOKEN, 7, "stripe"),)
    result, lines = run(
        egress_pool, "node", JS_SPLIT_STDERR, internet, egress=Egress.NONE, secrets=secrets, env={}
    )
    assert [line.text for line in lines] == ["begin ***"] and result.masked == 1
