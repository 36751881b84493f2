"""What a run may reach and is given, as a tenant may ask for it: egress, non-secret env and secret
bindings, one rule for an inline job and a function version (the functions app deploys with it).

The patterns and names follow ``sandbox.egress_policy`` (the proxy and the runner apply the same
rules); the tenant's ``max_egress`` is ``Quota.check_egress``'s; every bound secret must be one the
tenant has (its value is read only when a run starts, by ``jobs.environment``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from accounts.models import Tenant
from lambdasite.exceptions import ValidationFailed
from sandbox import egress_policy
from vault import selectors as vault_selectors
from vault.exceptions import UnknownSecret
from vault.validation import NAME_RULE as SECRET_NAME_RULE
from vault.validation import is_secret_name

EGRESS_SHAPE = 'must be "none", "public" or a list of "host:port" patterns'


@dataclass(frozen=True)
class Reach:
    """A validated policy, normalised: ``egress_mode`` none, allowlist (``egress_allow``'s sorted
    patterns) or public; ``env`` and ``secrets`` ({ENV_NAME: secret name}) sorted by name."""

    egress_mode: str = "none"
    egress_allow: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)

    @property
    def egress(self) -> str | list[str]:
        """As the API shows and takes it: "none", "public", or the list of patterns."""
        return list(self.egress_allow) if self.egress_mode == "allowlist" else self.egress_mode

    @property
    def is_nothing(self) -> bool:
        return self.egress_mode == "none" and not self.env and not self.secrets


NOTHING = Reach()


def _fail(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{name}: {message}", details={"fields": {name: [message]}})


def egress(value) -> tuple[str, tuple[str, ...]]:
    """Egress as (mode, patterns): ``"none"``, ``"public"``, or a list of ``host:port`` patterns,
    kept normalised (lower case, no final dot, each once, sorted); an empty list is none."""
    if value in ("none", "public"):
        return value, ()
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise _fail("egress", EGRESS_SHAPE)
    if len(value) > egress_policy.MAX_PATTERNS:
        raise _fail("egress", f"at most {egress_policy.MAX_PATTERNS} patterns")
    patterns = set()
    for pattern in value:
        problem = egress_policy.pattern_ok(pattern)
        if problem is not None:
            raise _fail("egress", problem)
        host, port = egress_policy.split_host_port(pattern.strip())
        patterns.add(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return ("allowlist", tuple(sorted(patterns))) if patterns else ("none", ())


def env(value) -> dict[str, str]:
    """Non-secret configuration: ``{NAME: value}`` strings, names not reserved by the platform, at
    most ``sandbox.egress_policy.MAX_ENV_BYTES`` of names and values together."""
    if not isinstance(value, dict):
        raise _fail("env", 'must be an object of names to string values, e.g. {"LOG_LEVEL": "debug"}')
    problem = egress_policy.env_problem(value)
    if problem is not None:
        raise _fail("env", problem)
    return dict(sorted(value.items()))


def secret_bindings(value, *, env: dict) -> dict[str, str]:
    """``{ENV_NAME: secret name}``: names ``env`` may use and does not, and secret names' shape
    (whether the tenant has them is ``secrets_exist``'s question)."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail(
            "secrets", 'must be an object of environment names to secret names, e.g. {"API_KEY": "stripe"}'
        )
    if len(value) > settings.SECRET_MAX_BINDINGS:
        raise _fail("secrets", f"at most {settings.SECRET_MAX_BINDINGS} bindings")
    for name, secret in value.items():
        problem = egress_policy.validate_env_name(name)
        if problem is not None:
            raise _fail("secrets", problem)
        if not is_secret_name(secret):
            raise _fail("secrets", f"{name}: {secret!r} is not a secret name ({SECRET_NAME_RULE})")
        if name in env:
            raise _fail("secrets", f"{name} is set by env too: a name is either configuration or a secret")
    return dict(sorted(value.items()))


def secrets_exist(*, tenant: Tenant, bindings: dict[str, str]) -> None:
    """Every bound secret is one the tenant has (400 ``unknown_secret`` naming the missing ones)."""
    if not bindings:
        return
    missing = sorted(
        set(bindings.values()) - vault_selectors.secret_names(tenant=tenant, among=bindings.values())
    )
    if missing:
        message = (
            f"this tenant has no secret named {', '.join(missing)}: set it first (PUT /api/v1/secrets/NAME)"
        )
        raise UnknownSecret(
            f"secrets: {message}",
            details={"field": "secrets", "missing": missing, "fields": {"secrets": [message]}},
        )


def reach_check(*, tenant: Tenant, egress_value=None, env_value=None, secrets_value=None) -> Reach:
    """A run's egress (within the tenant's ``max_egress``: 403 ``egress_not_allowed``), env and
    secret bindings (each a secret the tenant has: 400 ``unknown_secret``), normalised; a value not
    given (None) is none, ``{}``, ``{}``. Shapes and names are 400 ``validation_error`` naming the field."""
    mode, allow = egress(egress_value if egress_value is not None else "none")
    tenant.quota.check_egress(mode)
    config = env(env_value if env_value is not None else {})
    bindings = secret_bindings(secrets_value if secrets_value is not None else {}, env=config)
    secrets_exist(tenant=tenant, bindings=bindings)
    return Reach(egress_mode=mode, egress_allow=allow, env=config, secrets=bindings)
