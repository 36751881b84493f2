"""Jobs: the live list, a job's page with its log pane, its log as JSON or text, and its actions."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.db.models.functions import Left
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from functions.services import invoke
from jobs import billing, selectors, waiting
from jobs.events import event_for_line
from jobs.models import FINISHED, JOB_STATUSES, REQUEUEABLE, Job, LogLine, Status
from jobs.paging import job_page
from jobs.services import actions
from jobs.services.submit import Origin
from lambdasite.errors import json_error
from lambdasite.exceptions import ApplicationError
from sandbox import RUNTIMES
from webhooks.selectors import job_deliveries

from .. import tenancy
from ..job_errors import plain_error
from ..templatetags.dash import ms
from ..tenancy import dashboard_view
from .common import LOG_PAGE, PAGE_SIZE, job_or_404, no_store, partial

CODE_HEAD_CHARS = 500  # enough for the first non-blank line of nearly any code
NETWORK_PAGE = 200  # connections on the job page


@dashboard_view()
def job_list(request):
    tenant = request.ctx.tenant
    status = request.GET.get("status", "")
    runtime = request.GET.get("runtime", "")
    query = request.GET.get("q", "").strip()
    status = status if status in Status.values else ""
    runtime = runtime if runtime in RUNTIMES else ""
    qs = selectors.job_list(
        tenant_ids=[tenant.id], statuses=[status] if status else None, runtime=runtime or None
    )
    if query:
        qs = selectors.job_search(qs, query)
    qs = qs.annotate(code_head=Left("code", CODE_HEAD_CHARS))  # "what" of inline code, not the whole column
    filters = {"status": status, "runtime": runtime, "q": query}
    filter_query = urlencode({k: v for k, v in filters.items() if v})
    try:
        _, page = job_page(request, qs, page_size=PAGE_SIZE)
    except ApplicationError:  # a stale or forged cursor: the newest page instead
        return redirect(f"{request.path}?{filter_query}{'&partial=1' if partial(request) else ''}")
    cursor = request.GET.get("cursor", "")
    context = {
        "jobs": page.rows,
        "filters": filters,
        "filter_query": filter_query,
        "statuses": list(JOB_STATUSES),  # a job is never lost or suspended: its attempts are
        "runtimes": RUNTIMES,
        "older": _link(page.next),
        "cursor": cursor,
        "live_ws": f"/ws/tenants/{tenant.slug}/",
    }
    template = "dashboard/_job_rows.html" if partial(request) else "dashboard/job_list.html"
    return render(request, template, context)


def _link(url: str | None) -> str | None:
    """A pager link as ``?query`` for this page (never the live region's ``partial=1``)."""
    if not url:
        return None
    pairs = [(k, v) for k, v in parse_qsl(urlsplit(url).query) if k != "partial"]
    return "?" + urlencode(pairs)


def _job_context(request, job: Job) -> dict:
    attempts = list(job.attempt_set.order_by("number"))
    can_write = request.ctx.can_write
    return {
        "job": job,
        "attempts": attempts,
        "first_start": attempts[0].started_at if attempts else None,
        # the current run's start: a requeue starts a new run after the attempts already spent
        "run_start": attempts[job.retry_base].started_at if len(attempts) > job.retry_base else None,
        "finished": job.status in FINISHED,
        "now": timezone.now(),  # the page's clock ticks from the server's time, not the browser's
        "can_cancel": can_write and job.status not in FINISHED and not job.cancel_requested,
        "can_retry": can_write and job.status in REQUEUEABLE,
        "can_delete": can_write and job.status in FINISHED,
        "can_invoke_again": can_write and job.function_id is not None,
        "can_run_again": can_write and not job.function_name,
        "cost": billing.job_cost(job),
        "currency": settings.PRICE_CURRENCY,
        "result_json": json.dumps(job.result, indent=2, ensure_ascii=False)
        if job.status == Status.SUCCEEDED
        else None,
        "error": plain_error(job.error, job.runtime, timeout=ms(job.timeout_ms), memory_mb=job.memory_mb),
        "cancel_pending": job.cancel_requested and job.status not in FINISHED,
        "waiting_reason": waiting.waiting_reason(job),  # read now: what holds it (jobs.waiting)
    }


def _network_context(job: Job, attempts: list) -> dict:
    """The Network pane: the job's first connections (the API pages through the rest)."""
    connections = selectors.job_connections(job=job, limit=NETWORK_PAGE)
    return {
        "connections": connections,
        "connections_more": len(connections) == NETWORK_PAGE,
        "connections_dropped": sum(a.connections_dropped for a in attempts),
        "several_attempts": len({c.attempt for c in connections}) > 1,
        "egress_cost": billing.egress_cost(job.egress_bytes),
    }


STEPS_PAGE = 200  # steps on the job page (the API pages through the rest)
CHILDREN_SHOWN = 24  # children linked under a step (all are counted)


def _steps_context(job: Job) -> dict:
    """A durable run's timeline: its first steps, each with its children (counted by status, the
    first few linked) and its result shortened for the eye."""
    if not job.durable:
        return {"steps": [], "steps_more": False}
    steps = selectors.job_steps(job=job, limit=STEPS_PAGE)
    children = selectors.step_children(job=job, seqs=[s.seq for s in steps if s.kind in ("invoke", "map")])
    rows = []
    for step in steps:
        mine = children.get(step.seq, [])
        counts: dict[str, int] = {}
        for _, status, _ in mine:
            counts[status] = counts.get(status, 0) + 1
        rows.append(
            {
                "step": step,
                "result": json.dumps(step.result, ensure_ascii=False) if step.result is not None else "",
                "children": mine,
                "counts": sorted(counts.items()),
                "shown": mine[:CHILDREN_SHOWN],
                "more": max(0, len(mine) - CHILDREN_SHOWN),
            }
        )
    return {"steps": rows, "steps_more": len(steps) == STEPS_PAGE}


# ?part= of a live region; else the summary
PARTS = {"details": "_job_details", "network": "_connections", "steps": "_job_steps"}


@dashboard_view()
def job_detail(request, job_id):
    job = job_or_404(request, job_id)
    context = _job_context(request, job)
    if partial(request):
        part = PARTS.get(request.GET.get("part", ""), "_job_summary")
        if part == "_connections":
            context.update(_network_context(job, context["attempts"]))
        if part == "_job_steps":
            context.update(_steps_context(job))
        return no_store(render(request, f"dashboard/{part}.html", context))
    context.update(_network_context(job, context["attempts"]))
    context.update(_steps_context(job))
    lines = list(LogLine.objects.filter(job=job).order_by("seq")[:LOG_PAGE])
    context.update(
        lines=lines,
        more_lines=len(lines) == LOG_PAGE,
        last_seq=lines[-1].seq if lines else 0,
        # job.log_lines is written when an attempt ends: while it runs, the lines stored so far
        log_count=max(job.log_lines, lines[-1].seq if lines else 0),
        args_json=json.dumps(job.args, indent=2, ensure_ascii=False),
        live_ws=f"/ws/jobs/{job.id}/",
        deliveries=job_deliveries(job_id=job.id),
        schedule_run=job.schedule_runs.select_related("schedule").first(),
    )
    return render(request, "dashboard/job_detail.html", context)


@dashboard_view()
def job_log_lines(request, job_id):
    """Log lines after ``after`` as JSON: what the log pane fetches to fill a gap or catch up."""
    job = job_or_404(request, job_id)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        return json_error(400, "validation_failed", "after must be an integer")
    lines = selectors.job_logs(job=job, after=after, limit=LOG_PAGE)
    return no_store(
        JsonResponse({"lines": [event_for_line(line) for line in lines], "more": len(lines) == LOG_PAGE})
    )


@dashboard_view()
def job_log_download(request, job_id):
    job = job_or_404(request, job_id)

    def stream():
        last = 0
        while chunk := selectors.job_logs(job=job, after=last, limit=5000):
            yield "".join(
                f"{line.ts.isoformat()} attempt={line.attempt} {line.stream}: {line.text}\n" for line in chunk
            )
            last = chunk[-1].seq

    response = StreamingHttpResponse(stream(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.id}.log"'
    return response


def _act(request, job_id, action, done: str):
    """One action on a job, authorised by the user's role in the job's own tenant (not the session's)."""
    job = job_or_404(request, job_id)
    if not request.ctx.can_write:
        return tenancy.forbidden(request, "owner or member")
    try:
        action(job=job)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:job-detail", job_id=job.id)
    messages.success(request, done.format(short=str(job.id)[:8]))
    return (
        redirect("dashboard:jobs")
        if action is actions.job_delete
        else redirect("dashboard:job-detail", job_id=job.id)
    )


@require_POST
@dashboard_view()
def job_cancel(request, job_id):
    return _act(request, job_id, actions.job_cancel, "Cancel requested.")


@require_POST
@dashboard_view()
def job_retry(request, job_id):
    return _act(request, job_id, actions.job_requeue, "Queued again.")


@require_POST
@dashboard_view()
def job_delete(request, job_id):
    return _act(request, job_id, actions.job_delete, "Job {short} deleted.")


@require_POST
@dashboard_view()
def job_invoke_again(request, job_id):
    """Invoke a function job's function again, as it was invoked (through its alias, else the same
    version) with the same arguments, by the signed-in user; -> the new job's page."""
    job = job_or_404(request, job_id)
    if not request.ctx.can_write:
        return tenancy.forbidden(request, "owner or member")
    if job.function_id is None:
        messages.error(request, "Only an invocation of a deployed function can be invoked again.")
        return redirect("dashboard:job-detail", job_id=job.id)
    try:
        again, _ = invoke.function_invoke(
            tenant=job.tenant,
            api_key=None,
            name=job.function_name,
            qualifier=job.alias or str(job.version_number),
            args=job.args,
            origin=Origin.of_user(request.user),
            priority=job.priority,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:job-detail", job_id=job.id)
    return redirect("dashboard:job-detail", job_id=again.id)
