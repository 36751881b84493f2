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
