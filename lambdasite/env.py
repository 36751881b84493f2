"""Small typed readers of environment variables that fail fast on a bad value."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_hosts(name: str) -> dict[str, list[str]]:
    """``name=address,name=address`` (a name given twice has both addresses) -> {name: [address]}."""
    table: dict[str, list[str]] = {}
    for item in env_list(name, []):
        host, sep, address = item.partition("=")
        if not sep or not host.strip() or not address.strip():
            raise ImproperlyConfigured(f"{name} must be name=address pairs, not {item!r}")
        table.setdefault(host.strip().lower(), []).append(address.strip())
    return table


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


# values that were published (this repository, .env.example) and so protect nothing
PUBLISHED_SECRET_KEYS = {
    "dev-insecure-secret-key-change-me-in-production-0123456789",
    "change-me-to-a-long-random-string",
}


def secret_key(path, *, debug: bool) -> str:
    """SECRET_KEY from the environment, else from ``path`` (written by ``make`` set-up, mode 600).

    It keys sessions and the HMAC of every API key. A published value is refused unless
    DEBUG (or the test suite) is on; with neither source set, debug gets a throw-away key."""
    value = os.environ.get("SECRET_KEY", "").strip()
    if not value:
        try:
            value = path.read_text().strip()
        except OSError:
            value = ""
    if value in PUBLISHED_SECRET_KEYS or not value:
        if debug:
            return value or "debug-only-" + "x" * 40
        raise ImproperlyConfigured(
            "SECRET_KEY is unset or a published example: set it in the environment or .env "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), or run the set-up, "
            "which writes var/secret_key"
        )
    if len(value) < 32 and not debug:
        raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters")
    return value


MASTER_KEY_BYTES = 32


def master_key_value(name: str, raw: str) -> bytes:
    """A master key written as base64 (standard or URL-safe) of exactly 32 bytes."""
    import base64
    import binascii

    text = raw.strip()
    try:
        key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != MASTER_KEY_BYTES:
        raise ImproperlyConfigured(
            f"{name} must be the base64 of {MASTER_KEY_BYTES} random bytes "
            "(python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
        )
    return key


def _new_key_file(path) -> None:
    """Write a random key to ``path`` (mode 600) unless one is there: the file appears whole or not
    at all (written aside, then linked: two processes starting at once agree on one key)."""
    import base64
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secrets_key.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(os.urandom(MASTER_KEY_BYTES)).decode() + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def secrets_keys(path, *, debug: bool) -> tuple[bytes, tuple[bytes, ...]]:
    """(the master key, the keys it replaces) of the secrets store (``vault``).

    The master key wraps each tenant's data key, which encrypts the tenant's secrets: from
    ``SECRETS_KEY`` (base64 of 32 bytes), else the file ``SECRETS_KEY_FILE`` names, else ``path``
    (var/secrets_key, written by the set-up). Without any, DEBUG and the test suite write a random
    one to ``path``; production refuses to start, because secrets stored under a throw-away key
    could never be read again. ``SECRETS_KEY_OLD`` (comma-separated) lists earlier master keys
    still readable while ``manage.py secrets_rotate_master`` re-wraps the data keys."""
    raw = os.environ.get("SECRETS_KEY", "").strip()
    source = "SECRETS_KEY"
    if not raw and os.environ.get("SECRETS_KEY_FILE", "").strip():
        from pathlib import Path

        source = "SECRETS_KEY_FILE"
        try:
            raw = Path(os.environ["SECRETS_KEY_FILE"].strip()).read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"SECRETS_KEY_FILE cannot be read: {exc}") from None
    if not raw:
        source = str(path)
        if not path.exists() and debug:
            _new_key_file(path)
        try:
            raw = path.read_text()
        except OSError:
            raise ImproperlyConfigured(
                "SECRETS_KEY is unset: set it (or SECRETS_KEY_FILE) in the environment or .env "
                "(python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'), "
                "or run the set-up, which writes var/secrets_key. Keep it: secrets stored under a key "
                "are unreadable without it"
            ) from None
    current = master_key_value(source, raw)
    old = (master_key_value("SECRETS_KEY_OLD", item) for item in env_list("SECRETS_KEY_OLD", []))
    return current, tuple(key for key in old if key != current)
