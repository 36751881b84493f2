"""The new-job page: an editor with templates and examples, the job's network and configuration (as the
deploy form has them); submitting lands on the job's live page."""

from __future__ import annotations

import json

from django.shortcuts import redirect, render

from jobs.services import submit
from lambdasite.exceptions import ApplicationError
from sandbox import RUNTIMES

from ..examples import EXAMPLES, TEMPLATES
from ..forms import FIELDS, REACH_FIELDS, parse_job_form, reach_form, service_error
from ..tenancy import dashboard_view
from .common import job_or_404


@dashboard_view(write=True)
def job_new(request):
    quota = request.ctx.tenant.quota
    form = {
        "runtime": "python",
        "handler": "main",
        "code": TEMPLATES["python"],
        "args": "[2, 3]",
        "timeout_ms": quota.default_timeout_ms(),
        "memory_mb": quota.default_memory_mb(),
        "max_retries": quota.default_max_retries,
        **reach_form(None),
    }
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        # a page loaded before the network fields existed posts without them: none, as it meant
        posted = {name: request.POST[name] for name in REACH_FIELDS if name in request.POST}
        form = {**reach_form(None), **posted, **{name: request.POST.get(name, "") for name in FIELDS}}
        body, errors = parse_job_form(form)
        if not errors:
            try:
                job, _ = submit.job_submit(
                    tenant=request.ctx.tenant,
                    api_key=None,
                    spec=submit.JobSpec(**body),
                    origin=submit.Origin.of_user(request.user),
                )
                return redirect("dashboard:job-detail", job_id=job.id)
            except ApplicationError as exc:
                service_error(exc, form, errors)
        status = 400
    elif request.GET.get("from"):
        current = request.ctx
        source = job_or_404(request, request.GET["from"])
        request.ctx = current  # the copy is submitted to the current tenant, with its role checked above
        form.update(
            runtime=source.runtime,
            handler=source.handler,
            code=source.code,
            args=json.dumps(source.args),
            timeout_ms=source.timeout_ms,
            memory_mb=source.memory_mb,
            max_retries=source.max_retries,
            **reach_form(source),  # egress, secret bindings and env as it ran (values are read anew)
        )
    context = {
        "form": form,
        "errors": errors,
        "runtimes": RUNTIMES,
        "examples": EXAMPLES,
        "templates": TEMPLATES,
        "quota": quota,
    }
    return render(request, "dashboard/job_new.html", context, status=status)
