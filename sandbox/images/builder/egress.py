"""The builder's only way out: a loopback port forwarded to the platform's proxy socket (mounted at
/egress), which tunnels to the package index and registry only. pip, npm and urllib are pointed at it."""

import os
import socket
import threading

PROXY = {"url": "", "socket": "/egress/proxy.sock"}  # the url once forward_proxy has started


def forward_proxy():
    """Listen on a loopback port and connect each client to the platform's proxy socket."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def accept():
        while True:
            client, _ = listener.accept()
            threading.Thread(target=_serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    PROXY["url"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        os.environ[name] = PROXY["url"]
    os.environ.pop("NO_PROXY", None)
    os.environ.pop("no_proxy", None)


def _serve(client):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(PROXY["socket"])
    except OSError:
        client.close()
        return
    threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
    _pump(client, upstream)


def _pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
