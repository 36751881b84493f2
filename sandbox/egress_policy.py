"""What a job's egress policy and configuration may say: allowlist patterns, environment names, and
whether a policy lets a job ask for ``host:port``. Plain rules, shared by the proxy (which applies
them on every connection) and the API (which refuses a bad policy before it is stored).

A pattern is ``host:port``: a DNS name (``api.example.com:443``), a wildcard over a domain's
subdomains (``*.example.com:443``: ``a.example.com`` and ``a.b.example.com``, never
``example.com`` itself), or an IP literal in its canonical form (``203.0.113.7:443``,
``[2001:db8::1]:443``). Ports are explicit; port 25 is never reachable. A pattern only says what a
job may *ask* for: the address a name resolves to is still checked against the deny table
(``sandbox.netpolicy``), whatever the pattern."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from .netpolicy import BLOCKED_PORTS, literal_address

EGRESS_MODES = ("none", "allowlist", "public")
MAX_PATTERNS = 100
MAX_ENV_BYTES = 4096  # names and values of a version's non-secret configuration, together
MAX_ENV_NAME = 128

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Names the platform sets or that change how the runtime itself starts and loads code: a job's
# configuration may not set them (a job's own code can change its environment, but the platform
# never hands it a way around the proxy or into the loader through its configuration).
RESERVED_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "LANG", "LANGUAGE", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "TMPDIR",
        "HOSTNAME", "TERM", "TZDIR", "GCONV_PATH", "GLIBC_TUNABLES", "OPENSSL_CONF", "OPENSSL_MODULES",
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY", "SOCKS_PROXY",
        "SSLKEYLOGFILE", "UV_THREADPOOL_SIZE",
    }
)  # fmt: skip
RESERVED_ENV_PREFIXES = ("LD_", "LC_", "DYLD_", "MALLOC_", "PYTHON", "NODE_", "NPM_", "LAMBDASITE_")


def split_host_port(text: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` -> (host in lower case, without brackets or a final dot, port),
    or None if it is not of that shape."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or len(port) > 5:
        return None
    if host.startswith("["):
        if not host.endswith("]"):
            return None
        host = host[1:-1]
        if ":" not in host:
            return None
    elif ":" in host:
        return None  # an IPv6 literal must be bracketed: "::1:443" is ambiguous
    number = int(port)
    if not host or not 0 < number < 65536:
        return None
    return host.lower().removesuffix("."), number


def is_hostname(host: str) -> bool:
    """A DNS name of ASCII letters, digits, ``-`` and ``_`` (no IP literal, no wildcard)."""
    if not host or len(host) > 253 or not host.isascii():
        return False
    return all(_LABEL.match(label) for label in host.split("."))


def pattern_ok(pattern: str) -> str | None:
    """None if ``pattern`` is a valid allowlist entry, else why it is not."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > 300:
        return "must be a non-empty string of at most 300 characters"
    parsed = split_host_port(pattern.strip())
    if parsed is None:
        return f"{pattern!r} is not host:port (an IPv6 address in brackets: [2001:db8::1]:443)"
    host, port = parsed
    if port in BLOCKED_PORTS:
        return f"{pattern!r}: port {port} is never reachable"
    literal = literal_address(host)
    if literal is not None:
        address, canonical = literal
        if not canonical:
            return f"{pattern!r}: write the address as {address}"
        return None
    if host.startswith("*."):
        domain = host[2:]
        if not is_hostname(domain) or "." not in domain:
            return f"{pattern!r}: a wildcard covers the subdomains of a domain of two labels or more"
        return None
    if "*" in host:
        return f"{pattern!r}: a wildcard may only be the first label (*.example.com)"
    if not is_hostname(host):
        return f"{pattern!r}: {host!r} is not a host name"
    return None


def egress_problem(mode: str, allow: Iterable[str]) -> str | None:
    """None if ``(mode, allow)`` is a valid policy, else why not."""
    allow = tuple(allow)
    if mode not in EGRESS_MODES:
        return f"egress must be one of {', '.join(EGRESS_MODES)} (or a list of host:port patterns)"
    if mode != "allowlist" and allow:
        return f"egress {mode!r} takes no patterns"
    if len(allow) > MAX_PATTERNS:
        return f"at most {MAX_PATTERNS} egress patterns"
    for pattern in allow:
        problem = pattern_ok(pattern)
        if problem is not None:
            return problem
    return None


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def pattern_matches(pattern: str, host: str, port: int) -> bool:
    """Whether ``pattern`` lets a job ask for ``host:port`` (``host`` as split_host_port gives it)."""
    parsed = split_host_port(pattern.strip())
    if parsed is None or parsed[1] != port:
        return False
    want = parsed[0]
    if literal_address(want) is not None:
        return _same_address(want, host)
    if want.startswith("*."):
        return host.endswith(want[1:]) and len(host) > len(want) - 1
    return host == want


def names_address(patterns: Iterable[str], address: str, port: int) -> bool:
    """Whether one of ``patterns`` names this IP literal and port (an IP CONNECT needs no SNI then)."""
    return any(
        literal_address(p[0]) is not None and pattern_matches(pattern, address, port)
        for pattern in patterns
        if (p := split_host_port(pattern.strip())) is not None
    )


def allows(mode: str, patterns: Iterable[str], host: str, port: int) -> bool:
    """Whether a policy lets a job ask for ``host:port`` at all (the address is checked apart)."""
    if mode == "public":
        return True
    if mode == "allowlist":
        return any(pattern_matches(p, host, port) for p in patterns)
    return False


def validate_env_name(name: str) -> str | None:
    """None if ``name`` may be set by a job's configuration or a secret binding, else why not."""
    if not isinstance(name, str) or not _ENV_NAME.match(name) or len(name) > MAX_ENV_NAME:
        return (
            f"{name!r} is not an environment variable name (letters, digits and _, not starting with a "
            f"digit, at most {MAX_ENV_NAME} characters)"
        )
    upper = name.upper()
    if upper in RESERVED_ENV_NAMES or upper.startswith(RESERVED_ENV_PREFIXES):
        return f"{name} is reserved by the platform"
    return None


def env_problem(env: Mapping[str, str]) -> str | None:
    """None if ``env`` is a valid configuration (names, string values, at most MAX_ENV_BYTES), else why."""
    size = 0
    for name, value in env.items():
        problem = validate_env_name(name)
        if problem is not None:
            return problem
        if not isinstance(value, str) or "\x00" in value:
            return f"{name}: the value must be a string without NUL characters"
        size += len(name.encode()) + len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_ENV_BYTES:
        return f"the configuration is {size} bytes, over the {MAX_ENV_BYTES}-byte limit"
    return None
