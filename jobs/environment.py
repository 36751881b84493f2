"""What a run reaches and is given, as the sandbox takes it: egress, env and bound secret values.

One mapping for every kind of run (a function version's, an inline job's: both were checked with
``jobs.policy``); it lives here, below ``functions``, because the worker (``jobs.execution``) needs
it and never imports ``functions``. Values are read from the secrets store at run time: a rotation
reaches the next run; a binding to a secret the tenant no longer has raises
``vault.exceptions.UnknownSecret`` (the run cannot start: the job fails with that error)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import sandbox
from vault.services import secret_values


class RunEnvironment(NamedTuple):
    egress: sandbox.Egress
    env: dict[str, str]
    secrets: tuple[sandbox.SecretValue, ...]


NOTHING = RunEnvironment(sandbox.Egress.NONE, {}, ())


def run_environment_of(
    *,
    tenant,
    egress_mode: str,
    egress_allow: Sequence[str],
    env: Mapping[str, str],
    secrets: Mapping[str, str],
) -> RunEnvironment:
    """The sandbox's egress, env and secret values for a run of ``tenant`` with this policy
    (``secrets``: {ENV_NAME: secret name})."""
    if egress_mode == "none" and not env and not secrets:
        return NOTHING
    bound = secret_values(tenant=tenant, bindings=secrets)
    return RunEnvironment(
        egress=sandbox.Egress(mode=egress_mode, allow=tuple(egress_allow)),
        env=dict(env),
        secrets=tuple(
            sandbox.SecretValue(name=b.env_name, value=b.value, revision=b.revision, secret=b.secret_name)
            for b in bound
        ),
    )
