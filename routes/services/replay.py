"""Replaying a route's request: the request stored with its job (its argument, already bounded by
the route's ``max_body_bytes`` and without the platform's credentials) runs again, as a new job of
the same function, against any version or alias. A replay is the tenant's own call (an API key or a
signed-in member): no route auth, rate limit or delivery id applies; admission does."""

from __future__ import annotations

import dataclasses

from functions.services.invoke import invocation_spec
from jobs.models import Job, Trigger
from jobs.services import submit

from ..exceptions import NotReplayable
from ..models import Route


def is_route_job(job: Job) -> bool:
    """A job whose argument is a route's request: a delivery, or a replay of one."""
    return job.trigger == Trigger.ROUTE or job.route_id is not None


def default_qualifier(job: Job) -> str:
    """What a replay runs as when not told: the route's qualifier while it exists, else what the
    job ran as (its alias, else its version)."""
    route = Route.objects.filter(pk=job.route_id).first() if job.route_id else None
    if route is not None:
        return route.qualifier
    return job.alias or (str(job.version_number) if job.version_number else "")


def job_replay(
    *,
    job: Job,
    qualifier: str | None,
    origin: submit.Origin,
    api_key=None,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """A new job running ``job``'s stored request as ``qualifier`` (None: ``default_qualifier``).
    -> (job, created); ``origin``: who replays it (its route is kept)."""
    if not is_route_job(job) or not job.function_name or not job.args:
        raise NotReplayable("only a job made by a route's request can be replayed")
    chosen = qualifier if qualifier else default_qualifier(job)
    spec = invocation_spec(
        tenant=job.tenant, name=job.function_name, qualifier=chosen or None, args=list(job.args)
    )
    return submit.job_submit(
        tenant=job.tenant,
        api_key=api_key,
        spec=spec,
        idempotency_key=idempotency_key,
        origin=dataclasses.replace(origin, route_id=job.route_id),
    )
