"""Dead letters: jobs whose retries are used up, with their last error; requeue the selected ones."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from jobs import selectors
from jobs.models import Job, Status
from jobs.services import actions
from lambdasite.exceptions import ApplicationError

from ..tenancy import dashboard_view
from .common import partial


@dashboard_view()
def dead_letters(request):
    tenant = request.ctx.tenant
    jobs, total = selectors.dead_letters(tenant=tenant)
    context = {"jobs": jobs, "live_ws": f"/ws/tenants/{tenant.slug}/", "total": total}
    template = "dashboard/_dead_rows.html" if partial(request) else "dashboard/dead_letters.html"
    return render(request, template, context)


def _ids(values: list[str]) -> list[uuid.UUID]:
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            pass
    return ids


@require_POST
@dashboard_view(write=True)
def dead_letters_requeue(request):
    ids = _ids(request.POST.getlist("job"))
    if not ids:
        messages.error(request, "Nothing was requeued: select the jobs to requeue first.")
        return redirect("dashboard:dead-letters")
    jobs = Job.objects.filter(tenant=request.ctx.tenant, status=Status.DEAD, pk__in=ids)
    count = 0
    refused = None
    for job in jobs:
        try:
            actions.job_requeue(job=job)  # admission included: a requeue is a new run
            count += 1
        except ApplicationError as exc:
            if exc.status in (403, 429):
                refused = exc.message
                break
            # otherwise it changed in between: left as it is
    messages.success(request, f"Requeued {count} job{'s' if count != 1 else ''}.")
    if refused:
        messages.error(request, f"The rest were not requeued: {refused}")
    return redirect("dashboard:dead-letters")
