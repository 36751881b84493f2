"""A local "internet" for the egress tests: a network namespace joined to this one by a veth pair,
with addresses in the benchmarking range only (198.18.0.0/15), serving HTTP and HTTPS (a test CA
made here with ``cryptography``), and a name table the egress proxy resolves with instead of DNS.

Nothing is sent anywhere but loopback and 198.18.0.0/15. Needs root and iproute2 (as the partition
tests do); the namespace is removed when the test session ends."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST_SIDE = "198.18.0.1"
SERVER = "198.18.0.2"  # the namespace's first address
SERVER_B = "198.19.0.2"  # a second "host" in the other half of the range
ALLOW_CIDRS = "198.18.0.0/15"
NAMES = ("api.lab.test", "other.lab.test", "a.wild.lab.test", "rebind.lab.test", "b.lab.test")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def make_ca(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for every test name and the servers' addresses."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lambdasite test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in NAMES] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in (SERVER, SERVER_B)
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAMES[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem", "key": directory / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class Names:
    """The proxy's resolver in tests: a name table, thread-safe, with names whose answer changes."""

    def __init__(self) -> None:
        self.table: dict[str, list[list[str]]] = {}
        self.calls: list[str] = []
        self._lock = threading.Lock()
        for name in NAMES:
            self.table[name] = [[SERVER]]
        self.table["b.lab.test"] = [[SERVER_B]]

    def set(self, name: str, *answers: list[str]) -> None:
        """``name`` answers each list in turn, the last one for ever after."""
        with self._lock:
            self.table[name] = [list(a) for a in answers]

    def __call__(self, host: str, port: int) -> list[str]:
        with self._lock:
            self.calls.append(host)
            answers = self.table.get(host)
            if answers is None:
                raise OSError(f"{host}: no such name")
            return answers.pop(0) if len(answers) > 1 else list(answers[0])


class Internet:
    """The namespace, its link and its servers; ``requests()`` is what the servers have seen."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = f"lsinet{tag}"
        self.link = f"lsi{tag}h"
        self.peer = f"lsi{tag}n"
        self.dir = Path(tempfile.mkdtemp(prefix="lambdasite-internet-"))
        os.chmod(self.dir, 0o755)
        self.tls = make_ca(self.dir)
        self.log = self.dir / "requests.jsonl"
        self.log.write_text("")
        self.server: subprocess.Popen | None = None

    def start(self) -> Internet:
        _ip("netns", "add", self.ns)
        try:
            _ip("link", "add", self.link, "type", "veth", "peer", "name", self.peer)
            _ip("link", "set", self.peer, "netns", self.ns)
            _ip("addr", "add", f"{HOST_SIDE}/24", "dev", self.link)
            _ip("addr", "add", "198.19.0.1/24", "dev", self.link)
            _ip("link", "set", self.link, "up")
            for args in (
                ("addr", "add", f"{SERVER}/24", "dev", self.peer),
                ("addr", "add", f"{SERVER_B}/24", "dev", self.peer),
                ("link", "set", self.peer, "up"),
                ("link", "set", "lo", "up"),
            ):
                _ip("netns", "exec", self.ns, "ip", *args)
            script = str(Path(__file__).with_name("internet_server.py"))
            self.server = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, sys.executable, script, str(self.log),
                 str(self.tls["cert"]), str(self.tls["key"])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            if self.server.stdout.readline().strip() != "ready":
                raise RuntimeError("the test internet's servers did not start")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stdin.close()
            self.server.terminate()
            self.server.wait(timeout=10)
            self.server = None
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)

    def requests(self, wait_s: float = 0.0) -> list[dict]:
        deadline = time.monotonic() + wait_s
        while True:
            lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
            if lines or time.monotonic() >= deadline:
                return lines
            time.sleep(0.05)

    def clear(self) -> None:
        self.log.write_text("")
