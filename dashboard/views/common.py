"""What every dashboard page shares: partial renders for live regions (and pages that are their own
live source), no-store answers, and the lookup of a job among the tenants the signed-in user belongs
to."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse

from jobs import selectors
from jobs.models import Job

from .. import tenancy

PAGE_SIZE = 25
LOG_PAGE = 2000


def partial(request) -> bool:
    """A live region re-fetching itself (``?partial=1``): render only the fragment."""
    return request.GET.get("partial") == "1"


def no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


def live_page(request, response: HttpResponse) -> HttpResponse:
    """A page whose live regions re-fetch the page itself (``?partial=1``, ``data-live-pick``: the
    region takes its element from it). Such a fetch is not cached, and the flash messages it rendered
    stay for the page the person loads next: a background fetch must not swallow them."""
    if partial(request):
        messages.get_messages(request).used = False
        return no_store(response)
    return response


def found_or_404(found, what: str):
    """What a lookup found, or a 404 saying there is no such thing (None: not found, or not yours)."""
    if found is None:
        raise Http404(f"no such {what}")
    return found


def job_or_404(request, job_id) -> Job:
    """The job if it belongs to one of the user's tenants, else 404; ``request.ctx`` becomes the
    user's context in the job's tenant (the session's current tenant is not changed by a GET).

    A job of a tenant the user is not a member of is indistinguishable from one that does not exist."""
    job = selectors.job_get(tenant_ids=[m.tenant_id for m in request.ctx.memberships], job_id=job_id)
    found_or_404(job, "job")
    request.ctx = tenancy.context_for(request, job.tenant_id)
    return job
