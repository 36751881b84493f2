"""The sandbox against the real engine: isolation properties and the container's hardening."""

from __future__ import annotations

import pytest

import sandbox
from sandbox import Limits, RunSpec, seccomp
from sandbox.cell import LABEL

pytestmark = pytest.mark.docker


def run(pool, code: str, runtime: str = "python", tenant: str = "t-sandbox", **limits):
    lines = []
    result = pool.run(
        RunSpec(runtime=runtime, code=code, tenant=tenant, limits=Limits(**limits)), lines.extend
    )
    return result, lines


def test_it_has_no_network(sandbox_pool):
    code = """
import socket, os
def main():
    out = {"ifaces": sorted(os.listdir('/sys/class/net'))}
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed anywhere
        out["tcp"] = "connected"
    except OSError as exc:
        out["tcp"] = type(exc).__name__
    try:
        socket.getaddrinfo("example.com", 80)
        out["dns"] = "resolved"
    except OSError as exc:
        out["dns"] = type(exc).__name__
    return out
"""
    result, _ = run(sandbox_pool, code)
    assert result.status == "succeeded", result.error
    assert result.result["ifaces"] == ["lo"]
    assert result.result["tcp"] != "connected"
    assert result.result["dns"] != "resolved"


def test_the_root_filesystem_is_read_only_and_tmp_is_writable(sandbox_pool):
    code = """
import errno
def main():
    out = {}
    for path in ("/etc/evil", "/opt/lambdasite/runner.py", "/home/x", "/usr/bin/evil"):
        try:
            open(path, "w").write("x")
            out[path] = "written"
        except OSError as exc:
            out[path] = errno.errorcode[exc.errno]
    open("/tmp/ok", "w").write("fine")
    out["tmp"] = open("/tmp/ok").read()
    return out
"""
    result, _ = run(sandbox_pool, code)
    assert result.status == "succeeded", result.error
    assert result.result.pop("tmp") == "fine"
    assert set(result.result.values()) <= {"EROFS", "EACCES", "ENOENT"}


def test_user_code_runs_as_its_tenants_own_uid_without_any_capability(sandbox_pool):
    code = """
import os
def status(pid):
    lines = open(f"/proc/{pid}/status").read().splitlines()
    return dict(line.split(":\\t", 1) for line in lines if ":\\t" in line)
def main():
    me, runner = status("self"), status(1)
    caps = {key: me[name].strip() for key, name in (("cap_eff", "CapEff"), ("cap_prm", "CapPrm"),
                                                   ("cap_bnd", "CapBnd"), ("cap_amb", "CapAmb"))}
    return {"uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups(), **caps,
            "nnp": me["NoNewPrivs"].strip(), "seccomp": me["Seccomp"].strip(),
            "runner_uid": runner["Uid"].split()}
"""
    spec_uid = RunSpec(runtime="python", code="", tenant="t-uid").job_uid
    result, _ = run(sandbox_pool, code, tenant="t-uid")
    assert result.status == "succeeded", result.error
    out = result.result
    assert out["uid"] == [spec_uid] * 3 and out["gid"] == [spec_uid] * 3 and out["groups"] == []
    assert spec_uid > 200_000 and spec_uid % 2 == 1
    for key in ("cap_eff", "cap_prm", "cap_bnd", "cap_amb"):
        assert int(out[key], 16) == 0, (key, out[key])
    assert out["nnp"] == "1" and out["seccomp"] == "2"
    # the runner is another uid (no signals, ptrace, prlimit or renice can reach it), and not root
    assert out["runner_uid"] == [str(spec_uid - 1)] * 4


def test_two_tenants_never_share_a_uid(sandbox_pool):
    code = "import os\ndef main():\n    return os.getuid()\n"
    a, _ = run(sandbox_pool, code, tenant="t-uid-a")
    b, _ = run(sandbox_pool, code, tenant="t-uid-b")
    assert a.status == b.status == "succeeded"
    assert a.result != b.result


def test_the_environment_holds_no_secrets(sandbox_pool, monkeypatch):
    monkeypatch.setenv("SECRET_KEY_CANARY", "do-not-leak")
    code = "import os\ndef main():\n    return dict(os.environ)\n"
    result, _ = run(sandbox_pool, code)
    env = result.result
    assert "SECRET_KEY_CANARY" not in env
    assert not any(k in env for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DOCKER_HOST"))


def test_the_container_is_created_with_the_full_hardening_profile(docker_client):
    pool = sandbox.Sandbox(reuse="tenant")
    try:
        result = pool.run(
            RunSpec(
                runtime="python",
                code="def main():\n    return 1\n",
                tenant="t-inspect",
                limits=Limits(memory_mb=96, cpus=0.5, pids=32, tmpfs_mb=8),
            )
        )
        assert result.status == "succeeded"
        attrs = docker_client.api.inspect_container(result.container_id)
        host = attrs["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["Memory"] == 96 * 1024 * 1024 and host["MemorySwap"] == host["Memory"]
        assert host["NanoCpus"] == 500_000_000
        assert host["PidsLimit"] == 32
        # only what the runner needs to start jobs as another uid and to end them; jobs get none
        assert host["CapDrop"] == ["ALL"] and sorted(host["CapAdd"]) == [
            "KILL",
            "SETGID",
            "SETPCAP",
            "SETUID",
        ]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert "seccomp=" + seccomp.profile_json() in host["SecurityOpt"]
        assert host["Privileged"] is False
        assert not host["Binds"] and not attrs["Mounts"]
        assert "size=8m" in host["Tmpfs"]["/tmp"] and "noexec" in host["Tmpfs"]["/tmp"]
        assert {u["Name"] for u in host["Ulimits"]} >= {"nofile", "fsize"}
        assert host["LogConfig"]["Type"] == "none"
        assert attrs["Config"]["User"] == "0:0"  # for the runner's start only: see the uid test above
        assert attrs["Config"]["Labels"][LABEL] == "1"
        assert attrs["Config"]["Labels"]["lambdasite.host"]
    finally:
        pool.close()


def test_never_mode_uses_a_fresh_container_per_job(docker_client):
    pool = sandbox.Sandbox(reuse="never")
    try:
        spec = RunSpec(runtime="python", code="def main():\n    return 1\n", tenant="t-never")
        first, second = pool.run(spec), pool.run(spec)
        assert first.status == second.status == "succeeded"
        assert first.container_id != second.container_id
        assert not first.reused and not second.reused
        assert pool.stats()["warm_cells"] == 0
        pool.flush()
        existing = {c.id for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL}=1"})}
        assert first.container_id not in existing and second.container_id not in existing
    finally:
        pool.close()


def test_warm_cells_are_reused_within_a_tenant_but_never_across_tenants(sandbox_pool):
    code = "def main():\n    return 1\n"
    a1, _ = run(sandbox_pool, code, tenant="t-a")
    a2, _ = run(sandbox_pool, code, tenant="t-a")
    b1, _ = run(sandbox_pool, code, tenant="t-b")
    assert a1.container_id == a2.container_id and a2.reused
    assert b1.container_id != a1.container_id


def test_a_missing_image_is_an_internal_error_not_the_users(docker_client, monkeypatch):
    import sandbox.pool as pool_module

    monkeypatch.setattr(pool_module, "image_tag", lambda runtime: "lambdasite/does-not-exist:nope")
    pool = sandbox.Sandbox(reuse="never")
    with pytest.raises(sandbox.SandboxError) as info:
        pool.run(RunSpec(runtime="python", code="def main():\n    return 1\n", tenant="t"))
    assert info.value.code == "image_missing"
