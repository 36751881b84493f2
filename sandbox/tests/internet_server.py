"""The test internet's servers, run inside its network namespace (``ip netns exec``): plain HTTP on
ports 80 and 8080, HTTPS on 443 (a certificate of the test CA). Every request is written, one JSON
line each, to the log file named on the command line, so a test can see what reached a server.

Paths: ``/big?n=N`` answers N bytes; ``POST /echo`` answers the body; anything else answers
``hello from <local address>``. Stdlib only: it runs with the test's interpreter, no Django."""

from __future__ import annotations

import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and the body are two writes: no 40 ms wait between them
    log_lock = threading.Lock()
    log_path = ""

    def _record(self, body: bytes = b"") -> None:
        entry = {
            "method": self.command,
            "path": self.path,
            "local": self.connection.getsockname()[0],
            "port": self.connection.getsockname()[1],
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "tls": isinstance(self.connection, ssl.SSLSocket),
        }
        with self.log_lock, open(self.log_path, "a") as fh:
            fh.write(json.dumps(entry) + "\n")

    def _answer(self, body: bytes, chunks: int = 1) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = max(1, len(body) // chunks)
        for start in range(0, len(body), step):
            self.wfile.write(body[start : start + step])
            self.wfile.flush()

    def do_GET(self):  # noqa: N802 - http.server's name
        self._record()
        parts = urlsplit(self.path)
        if parts.path == "/big":
            n = int(parse_qs(parts.query).get("n", ["1000"])[0])
            self._answer(b"x" * n, chunks=max(1, n // 65536))
            return
        self._answer(f"hello from {self.connection.getsockname()[0]}".encode())

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self._record(body)
        self._answer(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # benchmarks open connections quickly

    def handle_error(self, request, client_address):
        pass  # a client cut off midway (the byte cap) is what some tests do on purpose


def serve(port: int, context: ssl.SSLContext | None = None) -> None:
    server = Server(("0.0.0.0", port), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main() -> None:
    log_path, cert, key = sys.argv[1:4]
    Handler.log_path = log_path
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    serve(80)
    serve(8080)
    serve(443, context)
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin


if __name__ == "__main__":
    main()
