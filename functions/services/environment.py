"""A version's run environment: what the worker puts in the sandbox's RunSpec (egress, env, the
current values of its bound secrets)."""

from __future__ import annotations

from jobs.environment import RunEnvironment, run_environment_of

from ..models import FunctionVersion


def run_environment(*, version: FunctionVersion) -> RunEnvironment:
    """-> (sandbox.Egress, env, tuple of sandbox.SecretValue). Raises ``vault.exceptions.UnknownSecret``
    when a bound secret was deleted since the deploy."""
    return run_environment_of(
        tenant=version.function.tenant,
        egress_mode=version.egress_mode,
        egress_allow=version.egress_allow,
        env=version.env,
        secrets=version.secrets,
    )
