"""The cell's side of the door: a loopback port relayed to the egress proxy's socket.

The cell has network ``none``: loopback only. When the host mounted a door (the cell's job may
reach the world through the worker's egress proxy), the runner starts this relay for each job,
before the job's process: it listens on 127.0.0.1:3128 in the cell's own network namespace and
copies every connection, byte for byte, to ``/run/lambdasite/egress/proxy.sock``. It understands
nothing of what it carries: the proxy on the host decides everything, and knows which attempt it
serves from the socket alone. The relay runs as the runner's uid with no capabilities (the job's
uid can neither signal nor trace it) and dies with the job's other processes after the job.

The job's process is pointed at it with HTTP_PROXY/HTTPS_PROXY/ALL_PROXY (and NODE_USE_ENV_PROXY
for Node); a client that ignores them finds no route: there is no interface but loopback."""

import errno
import os
import selectors
import socket

from .privileges import drop_capabilities, set_non_dumpable
from .wire import MAX_FD

SOCKET = "/run/lambdasite/egress/proxy.sock"
PORT = 3128
URL = "http://127.0.0.1:%d" % PORT
CHUNK = 65536


def present():
    """Whether the host mounted a door into this cell."""
    return os.path.exists(SOCKET)


def proxy_env():
    """What points the job's HTTP clients at the door (nothing bypasses it: NO_PROXY is empty)."""
    env = {}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = URL
    env["NO_PROXY"] = env["no_proxy"] = ""
    env["NODE_USE_ENV_PROXY"] = "1"
    return env


def start_relay():
    """Listen on the loopback port and fork the relay; -> its pid, or None if the port is taken."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", PORT))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        os.write(2, ("runner: the door's port is unavailable (%s)\n" % exc).encode())
        return None
    pid = os.fork()
    if pid == 0:
        try:
            _relay_main(listener)
        finally:
            os._exit(0)
    listener.close()
    return pid


def _relay_main(listener):
    import signal

    for sig in (signal.SIGCHLD, signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    keep = listener.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, MAX_FD)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)  # never the runner's request or frame streams
    os.close(devnull)
    drop_capabilities()
    set_non_dumpable()
    Relay(listener).run()


class _Pipe:
    """One direction of a relayed connection, with what the slow side has not taken yet."""

    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.pending = b""
        self.eof = False


class _Pair:
    def __init__(self, relay, client, upstream):
        self.relay = relay
        self.socks = (client, upstream)
        self.pipes = (_Pipe(client, upstream), _Pipe(upstream, client))
        self.registered = {}
        for sock in self.socks:
            sock.setblocking(False)
        self.update()

    def interest(self, sock):
        events = 0
        for pipe in self.pipes:
            if pipe.src is sock and not pipe.eof and not pipe.pending:
                events |= selectors.EVENT_READ
            if pipe.dst is sock and pipe.pending:
                events |= selectors.EVENT_WRITE
        return events

    def update(self):
        sel = self.relay.sel
        for sock in self.socks:
            events, before = self.interest(sock), self.registered.get(sock, 0)
            if events == before:
                continue
            if not before:
                sel.register(sock, events, self)
            elif not events:
                sel.unregister(sock)
            else:
                sel.modify(sock, events, self)
            self.registered[sock] = events

    def handle(self, sock, mask):
        try:
            for pipe in self.pipes:
                if mask & selectors.EVENT_WRITE and pipe.dst is sock and pipe.pending:
                    sent = sock.send(pipe.pending)
                    pipe.pending = pipe.pending[sent:]
                    if not pipe.pending and pipe.eof:
                        pipe.dst.shutdown(socket.SHUT_WR)
                if mask & selectors.EVENT_READ and pipe.src is sock and not pipe.eof and not pipe.pending:
                    data = sock.recv(CHUNK)
                    if not data:
                        pipe.eof = True
                        pipe.dst.shutdown(socket.SHUT_WR)
                        continue
                    try:
                        sent = pipe.dst.send(data)
                    except BlockingIOError:
                        sent = 0
                    pipe.pending = data[sent:]
        except BlockingIOError:
            pass
        except OSError:
            self.close()
            return
        if all(p.eof and not p.pending for p in self.pipes):
            self.close()
        else:
            self.update()

    def close(self):
        for sock in self.socks:
            if self.registered.get(sock):
                self.relay.sel.unregister(sock)
            self.registered[sock] = 0
            try:
                sock.close()
            except OSError:
                pass


class Relay:
    def __init__(self, listener):
        self.listener = listener
        self.sel = selectors.DefaultSelector()
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, None)

    def run(self):
        while True:
            for key, mask in self.sel.select():
                if key.data is None:
                    self.accept()
                else:
                    key.data.handle(key.fileobj, mask)

    def accept(self):
        try:
            client, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                return
            raise
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(SOCKET)
        except OSError:
            client.close()
            upstream.close()
            return
        _Pair(self, client, upstream)
