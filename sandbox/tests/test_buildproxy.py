"""The builders' proxy: tunnels to the package indexes only, the same refusal for every other target,
and a builder (network none) that reaches nothing else even when a dependency names a URL.

Every server here is started by the test on 127.0.0.1; nothing is sent anywhere else."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox import buildproxy, layers


class _Counting(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.hits: list[str] = []
        self.connections = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self):
        self.connections += 1
        return super().get_request()

    @property
    def port(self) -> int:
        return self.server_address[1]


def _server(body: bytes = b"hello", content_type: str = "text/plain") -> _Counting:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.server.hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return _Counting(Handler)


def _ask(proxy: buildproxy.BuildProxy, head: bytes) -> bytes:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(proxy.path)
    sock.sendall(head)
    answer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
        if head.startswith(b"CONNECT") and b"\r\n\r\n" in answer:
            break
    return answer if not head.startswith(b"CONNECT") else answer + _finish_tunnel(sock, answer)


def _finish_tunnel(sock: socket.socket, answer: bytes) -> bytes:
    if not answer.startswith(b"HTTP/1.1 200"):
        return b""
    sock.sendall(b"GET /through HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rest = b""
    while chunk := sock.recv(65536):
        rest += chunk
    return rest


def test_allowed_targets_are_the_index_hosts_and_their_file_hosts():
    targets = buildproxy.allowed_targets(
        [
            "https://pypi.org/simple",
            "https://registry.npmjs.org/",
            "http://10.0.0.5:3141/root/pypi/",
            "ftp://x",
        ]
    )
    assert targets == {
        ("pypi.org", 443),
        ("files.pythonhosted.org", 443),
        ("registry.npmjs.org", 443),
        ("10.0.0.5", 3141),
    }


@pytest.mark.parametrize(
    "head",
    [
        b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1:0 HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1:\xb2 HTTP/1.1\r\n\r\n",
        b"GET /relative HTTP/1.1\r\n\r\n",
        b"GET ftp://127.0.0.1/x HTTP/1.1\r\n\r\n",
        b"GET http://127.0.0.1:80x/ HTTP/1.1\r\n\r\n",
        b"NONSENSE\r\n\r\n",
    ],
)
def test_malformed_requests_are_refused(head):
    assert buildproxy.parse_target(head) is None


def test_a_tunnel_to_an_allowed_target_works_and_every_other_target_gets_the_same_refusal():
    index, other = _server(b"index"), _server(b"secret")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    with buildproxy.BuildProxy({("127.0.0.1", index.port)}) as proxy:
        through = _ask(proxy, f"CONNECT 127.0.0.1:{index.port} HTTP/1.1\r\n\r\n".encode())
        assert through.startswith(buildproxy.ESTABLISHED)
        assert through.endswith(b"index") and index.hits == ["/through"]

        plain = _ask(
            proxy, f"GET http://127.0.0.1:{index.port}/simple/six/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        assert plain.startswith(b"HTTP/1.0 200") and plain.endswith(b"index")
        assert index.hits[-1] == "/simple/six/"  # rewritten to origin form

        refusals = {
            _ask(proxy, f"CONNECT 127.0.0.1:{other.port} HTTP/1.1\r\n\r\n".encode()),
            _ask(proxy, f"CONNECT 127.0.0.1:{closed_port} HTTP/1.1\r\n\r\n".encode()),
            _ask(proxy, f"GET http://127.0.0.1:{other.port}/ HTTP/1.1\r\n\r\n".encode()),
            _ask(proxy, b"CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n"),
            _ask(proxy, b"CONNECT no-such-name.invalid:443 HTTP/1.1\r\n\r\n"),
        }
        assert refusals == {buildproxy.REFUSED}  # open, closed, nonexistent: indistinguishable
        assert other.connections == 0 and other.hits == []
        directory = proxy.directory
    assert not __import__("os").path.exists(directory)  # closed: socket and directory removed


def _fake_registry(leak_port: int) -> _Counting:
    """An npm registry (plain HTTP on loopback) with one package whose dependency is a URL."""
    packument = {
        "name": "innocent",
        "dist-tags": {"latest": "1.0.0"},
        "versions": {
            "1.0.0": {
                "name": "innocent",
                "version": "1.0.0",
                "dependencies": {"probe": f"http://127.0.0.1:{leak_port}/probe.tgz"},
                "dist": {
                    "tarball": "http://127.0.0.1:1/innocent-1.0.0.tgz",
                    "integrity": "sha512-" + "A" * 86 + "==",
                },
            }
        },
    }
    return _server(json.dumps(packument).encode(), "application/json")


@pytest.mark.docker
def test_a_transitive_url_dependency_reaches_nothing_and_reveals_nothing(docker_client):
    """On the host network npm fetched a URL dependency while resolving, and its status showed in the log."""
    leak = _server(b"not a tarball")
    registry = _fake_registry(leak.port)
    limits = layers.BuildLimits(timeout_s=120, npm_registry=f"http://127.0.0.1:{registry.port}/")
    logs: list[str] = []
    with pytest.raises(layers.BuildFailed) as open_port:
        layers.resolve(docker_client, "node", {"innocent": "1.0.0"}, on_log=logs.append, limits=limits)
    assert registry.hits, "the registry itself is reached through the proxy"
    assert "outside the registry" in str(open_port.value)
    assert leak.connections == 0, "the URL dependency's host was never contacted"
    leak.shutdown()
    leak.server_close()
    with pytest.raises(layers.BuildFailed) as closed_port:
        layers.resolve(docker_client, "node", {"innocent": "1.0.0"}, on_log=[].append, limits=limits)
    assert str(open_port.value) == str(closed_port.value)  # no port or status oracle


@pytest.mark.docker
@pytest.mark.parametrize(
    ("runtime", "spec", "said"),
    [
        ("python", "six==1.16.0 ; python_version > '${HOME}'\n", "only package names"),
        ("node", {"a": "github:someone/something"}, "must come from the registry"),
        ("node", {"a": "file:../../etc"}, "must come from the registry"),
        ("node", {"a": "npm:other@1"}, "must come from the registry"),
    ],
)
def test_references_that_are_not_index_packages_are_refused(docker_client, runtime, spec, said):
    with pytest.raises(layers.BuildFailed, match=said):
        layers.resolve(
            docker_client, runtime, spec, on_log=[].append, limits=layers.BuildLimits(timeout_s=60)
        )


@pytest.mark.docker
def test_a_builder_reaches_its_proxy_through_a_named_volume_as_under_compose(docker_client):
    """In a container the build worker makes its sockets in a named volume (BUILD_PROXY_VOLUME); the
    builder mounts that volume and finds its own socket in it. Here this process plays the build
    worker: it writes into the volume's directory on this host."""
    name = f"lambdasite-test-proxy-{uuid.uuid4().hex[:8]}"
    volume = docker_client.volumes.create(name=name)
    try:
        limits = layers.BuildLimits(timeout_s=120, proxy_dir=volume.attrs["Mountpoint"], proxy_volume=name)
        resolved = layers.resolve(docker_client, "python", "six==1.16.0\n", on_log=[].append, limits=limits)
        assert resolved.lock.startswith("six==1.16.0 --hash=sha256:")
    finally:
        volume.remove(force=True)


def test_the_proxy_is_mounted_as_the_engine_sees_it():
    directory = "/build-proxy/lambdasite-build-proxy-abc"
    assert layers.proxy_mount(layers.BuildLimits(), directory) == (directory, "/egress/proxy.sock")
    assert layers.proxy_mount(layers.BuildLimits(proxy_volume="vol"), directory) == (
        "vol",
        "/egress/lambdasite-build-proxy-abc/proxy.sock",
    )
    host = "/var/lib/kubelet/pods/P/volumes/kubernetes.io~empty-dir/build-proxy"
    assert layers.proxy_mount(layers.BuildLimits(proxy_host_dir=host), directory) == (
        f"{host}/lambdasite-build-proxy-abc",
        "/egress/proxy.sock",
    )
