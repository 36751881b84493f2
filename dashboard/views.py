"""The dashboard: server-rendered pages for one tenant at a time, kept live by Channels.

Every page that changes while you look at it has a region with ``data-live-src``:
live.js re-fetches that URL (the same view, ``?partial=1``) when an event says
something changed, so what the page shows always comes from the database.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import CharField
from django.db.models.functions import Cast
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError as DRFValidationError

from accounts import ratelimit
from accounts.models import ApiKey
from accounts.services import api_key_issue, api_key_revoke
from jobs import selectors, services
from jobs.api.serializers import JobSubmitSerializer
from jobs.events import event_for_line
from jobs.models import FINISHED, REQUEUEABLE, Job, LogLine, Status
from lambdasite.errors import ApplicationError
from sandbox import RUNTIMES

from . import charts, tenancy
from .examples import EXAMPLES, TEMPLATES
from .tenancy import dashboard_view

PAGE_SIZE = 25
LOG_PAGE = 2000


def _partial(request) -> bool:
    return request.GET.get("partial") == "1"


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


# -- overview ---------------------------------------------------------------------

RANGES = {"hour": (timedelta(hours=1), 60), "day": (timedelta(days=1), 15 * 60)}


@dashboard_view()
def overview(request):
    tenant = request.ctx.tenant
    range_name = request.GET.get("range") if request.GET.get("range") in RANGES else "hour"
    span, bucket_s = RANGES[range_name]
    now = timezone.now()
    since = (now - span).replace(second=0, microsecond=0)
    stats = selectors.tenant_stats(tenant=tenant, since=since, now=now)
    usage = selectors.tenant_usage(tenant=tenant, now=now)
    series = selectors.tenant_timeseries(tenant=tenant, since=since, bucket_s=bucket_s, now=now)
    times = [point["start"] for point in series]
    per_minute = [point["jobs"] / (bucket_s / 60) for point in series]
    quota = tenant.quota
    tokens_left = ratelimit.peek(
        bucket=ratelimit.tenant_bucket(tenant), per_minute=quota.submissions_per_minute
    )
    bars = [
        _bar(
            "Concurrency", usage["concurrency"]["in_use"], quota.max_concurrency, "running or dispatched now"
        ),
        _bar(
            "Submission rate",
            quota.submissions_per_minute - tokens_left,
            quota.submissions_per_minute,
            "of the per-minute bucket in use",
        ),
        _bar("Compute this month", usage["gb_seconds"]["used"], quota.monthly_gb_seconds, "GB-s"),
    ]
    context = {
        "range": range_name,
        "stats": stats,
        "usage": usage,
        "status_counts": [
            (status, stats["by_status"].get(status, 0)) for status in Status.values if status != Status.LOST
        ],
        "bars": bars,
        "jobs_chart": charts.bars(per_minute, times, label=f"Jobs per minute, last {range_name}"),
        "run_chart": charts.lines(
            {"p50": [p["run_p50_ms"] for p in series], "p95": [p["run_p95_ms"] for p in series]},
            times,
            label=f"Run time p50 and p95, last {range_name}",
            unit=" ms",
        ),
        "live_ws": f"/ws/tenants/{tenant.slug}/",
    }
    template = "dashboard/_overview.html" if _partial(request) else "dashboard/overview.html"
    return render(request, template, context)


def _bar(label: str, used: float, limit: float, unit: str) -> dict:
    used = max(0.0, float(used))
    percent = min(100.0, 100.0 * used / limit) if limit else 100.0
    return {
        "label": label,
        "used": used,
        "limit": limit,
        "unit": unit,
        "percent": round(percent, 1),
        "level": "high" if percent >= 90 else "mid" if percent >= 70 else "low",
    }


# -- jobs list ----------------------------------------------------------------------


@dashboard_view()
def job_list(request):
    tenant = request.ctx.tenant
    status = request.GET.get("status", "")
    runtime = request.GET.get("runtime", "")
    query = request.GET.get("q", "").strip()
    if status and status not in Status.values:
        status = ""
    if runtime and runtime not in RUNTIMES:
        runtime = ""
    qs = selectors.job_list(tenant=tenant, statuses=[status] if status else None, runtime=runtime or None)
    if query:
        qs = _search(qs, query)
    before = request.GET.get("before", "")
    if before:
        anchor = (
            Job.objects.filter(tenant=tenant, pk=before).values("created_at").first()
            if _is_uuid(before)
            else None
        )
        if anchor is None:
            before = ""
        else:
            qs = qs.filter(created_at__lt=anchor["created_at"]) | qs.filter(
                created_at=anchor["created_at"], id__lt=before
            )
    rows = list(qs.order_by("-created_at", "-id")[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    filters = {"status": status, "runtime": runtime, "q": query}
    context = {
        "jobs": rows,
        "filters": filters,
        "filter_query": "&".join(f"{k}={v}" for k, v in filters.items() if v),
        "statuses": [s for s in Status.values if s != Status.LOST],
        "runtimes": RUNTIMES,
        "older": rows[-1].id if more else None,
        "before": before,
        "live_ws": f"/ws/tenants/{tenant.slug}/",
    }
    template = "dashboard/_job_rows.html" if _partial(request) else "dashboard/job_list.html"
    return render(request, template, context)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def _search(qs, query: str):
    """A whole job id, or the first characters of one (as shown in the list)."""
    query = query.lower()
    if _is_uuid(query):
        return qs.filter(pk=query)
    if not all(c in "0123456789abcdef-" for c in query):
        return qs.none()
    return qs.annotate(id_text=Cast("id", output_field=CharField())).filter(id_text__startswith=query)


# -- job detail ------------------------------------------------------------------------


def _job_or_404(request, job_id) -> Job:
    """The job if it belongs to one of the user's tenants, else 404; ``request.ctx`` becomes the
    user's context in the job's tenant (the session's current tenant is not changed by a GET).

    A job of a tenant the user is not a member of is indistinguishable from one that does not exist."""
    try:
        job = Job.objects.select_related("tenant").get(pk=job_id)
    except (Job.DoesNotExist, ValidationError, ValueError):
        raise Http404("no such job") from None
    ctx = tenancy.context_for(request, job.tenant_id)
    if ctx is None:
        raise Http404("no such job")
    request.ctx = ctx
    return job


def _job_context(request, job: Job) -> dict:
    attempts = list(job.attempt_set.order_by("number"))
    first_start = attempts[0].started_at if attempts else None
    return {
        "job": job,
        "attempts": attempts,
        "first_start": first_start,
        "finished": job.status in FINISHED,
        "can_cancel": request.ctx.can_write and job.status not in FINISHED and not job.cancel_requested,
        "can_retry": request.ctx.can_write and job.status in REQUEUEABLE,
        "can_delete": request.ctx.can_write and job.status in FINISHED,
        "cost": selectors.cost(gb_seconds=job.gb_seconds, requests=job.attempts),
        "currency": settings.PRICE_CURRENCY,
        "result_json": json.dumps(job.result, indent=2, ensure_ascii=False)
        if job.status == Status.SUCCEEDED
        else None,
        "cancel_pending": job.cancel_requested and job.status not in FINISHED,
    }


@dashboard_view()
def job_detail(request, job_id):
    job = _job_or_404(request, job_id)
    context = _job_context(request, job)
    if _partial(request):
        return _no_store(render(request, "dashboard/_job_summary.html", context))
    lines = list(LogLine.objects.filter(job=job).order_by("seq")[:LOG_PAGE])
    context.update(
        {
            "lines": lines,
            "more_lines": len(lines) == LOG_PAGE,
            "last_seq": lines[-1].seq if lines else 0,
            "args_json": json.dumps(job.args, indent=2, ensure_ascii=False),
            "live_ws": f"/ws/jobs/{job.id}/",
        }
    )
    return render(request, "dashboard/job_detail.html", context)


@dashboard_view()
def job_log_lines(request, job_id):
    """Log lines after ``after`` as JSON: what the log pane fetches to fill a gap or catch up."""
    job = _job_or_404(request, job_id)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        return JsonResponse(
            {"error": {"code": "validation_failed", "message": "after must be an integer"}}, status=400
        )
    lines = list(LogLine.objects.filter(job=job, seq__gt=after).order_by("seq")[:LOG_PAGE])
    return _no_store(
        JsonResponse({"lines": [event_for_line(line) for line in lines], "more": len(lines) == LOG_PAGE})
    )


@dashboard_view()
def job_log_download(request, job_id):
    job = _job_or_404(request, job_id)

    def stream():
        last = 0
        while True:
            chunk = list(LogLine.objects.filter(job=job, seq__gt=last).order_by("seq")[:5000])
            if not chunk:
                return
            yield "".join(
                f"{line.ts.isoformat()} attempt={line.attempt} {line.stream}: {line.text}\n" for line in chunk
            )
            last = chunk[-1].seq

    response = StreamingHttpResponse(stream(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.id}.log"'
    return response


def _act(request, job_id, action, done: str):
    job = _job_or_404(request, job_id)
    if not request.ctx.can_write:  # the role in the job's own tenant, not the session's
        return tenancy.forbidden(request, "owner or member")
    try:
        action(job=job)
        messages.success(request, done)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("dashboard:job-detail", job_id=job.id)


@require_POST
@dashboard_view()
def job_cancel(request, job_id):
    return _act(request, job_id, services.job_cancel, "Cancel requested.")


@require_POST
@dashboard_view()
def job_retry(request, job_id):
    return _act(request, job_id, services.job_requeue, "Queued again.")


@require_POST
@dashboard_view()
def job_delete(request, job_id):
    job = _job_or_404(request, job_id)
    if not request.ctx.can_write:
        return tenancy.forbidden(request, "owner or member")
    try:
        services.job_delete(job=job)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:job-detail", job_id=job.id)
    messages.success(request, f"Job {str(job.id)[:8]} deleted.")
    return redirect("dashboard:jobs")


# -- new job ----------------------------------------------------------------------------


@dashboard_view(write=True)
def job_new(request):
    quota = request.ctx.tenant.quota
    form = {
        "runtime": "python",
        "handler": "main",
        "code": TEMPLATES["python"],
        "args": "[2, 3]",
        "timeout_ms": min(settings.JOB_DEFAULT_TIMEOUT_MS, quota.max_timeout_ms),
        "memory_mb": min(settings.JOB_DEFAULT_MEMORY_MB, quota.max_memory_mb),
        "max_retries": quota.default_max_retries,
    }
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form = {name: request.POST.get(name, "") for name in form}
        body, errors = _parse_job_form(form)
        if not errors:
            try:
                job, _ = services.job_submit(
                    tenant=request.ctx.tenant, api_key=None, spec=services.JobSpec(**body)
                )
                return redirect("dashboard:job-detail", job_id=job.id)
            except ApplicationError as exc:
                details = exc.details or {}
                field = details.get("field") or next(iter(details.get("fields") or {}), None)
                errors[field if field in form else "form"] = exc.message
        status = 400
    elif request.GET.get("from"):
        current = request.ctx
        source = _job_or_404(request, request.GET["from"])
        request.ctx = current  # the copy is submitted to the current tenant, with its role checked above
        form.update(
            runtime=source.runtime,
            handler=source.handler,
            code=source.code,
            args=json.dumps(source.args),
            timeout_ms=source.timeout_ms,
            memory_mb=source.memory_mb,
            max_retries=source.max_retries,
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


def _parse_job_form(form: dict) -> tuple[dict, dict]:
    """The form's strings as the API's JSON body, validated by the API's own serializer."""
    errors: dict[str, str] = {}
    body: dict = {
        "runtime": form["runtime"],
        "code": form["code"].replace("\r\n", "\n"),
        "handler": form["handler"] or "main",
    }
    try:
        body["args"] = json.loads(form["args"] or "[]")
    except (ValueError, RecursionError) as exc:
        errors["args"] = f"not valid JSON: {exc}"
    for name in ("timeout_ms", "memory_mb", "max_retries"):
        value = str(form[name]).strip()
        if value:
            try:
                body[name] = int(value)
            except ValueError:
                errors[name] = "must be a whole number"
    if errors:
        return body, errors
    serializer = JobSubmitSerializer(data=body)
    try:
        serializer.is_valid(raise_exception=True)
    except DRFValidationError:
        for name, problems in serializer.errors.items():
            errors[name if name in form else "form"] = " ".join(str(p) for p in problems)
        return body, errors
    return dict(serializer.validated_data), errors


# -- dead letters --------------------------------------------------------------------------


@dashboard_view()
def dead_letters(request):
    tenant = request.ctx.tenant
    jobs = list(
        Job.objects.filter(tenant=tenant, status=Status.DEAD).defer("code").order_by("-finished_at")[:200]
    )
    context = {
        "jobs": jobs,
        "live_ws": f"/ws/tenants/{tenant.slug}/",
        "total": Job.objects.filter(tenant=tenant, status=Status.DEAD).count(),
    }
    template = "dashboard/_dead_rows.html" if _partial(request) else "dashboard/dead_letters.html"
    return render(request, template, context)


@require_POST
@dashboard_view(write=True)
def dead_letters_requeue(request):
    ids = request.POST.getlist("job")
    jobs = Job.objects.filter(
        tenant=request.ctx.tenant, status=Status.DEAD, pk__in=[i for i in ids if _is_uuid(i)]
    )
    count = 0
    refused = None
    for job in jobs:
        try:
            services.job_requeue(job=job)  # admission included: a requeue is a new run
            count += 1
        except ApplicationError as exc:
            if exc.status == 429 or exc.status == 403:
                refused = exc.message
                break
            # otherwise it changed in between: left as it is
    messages.success(request, f"Requeued {count} job{'s' if count != 1 else ''}.")
    if refused:
        messages.error(request, f"The rest were not requeued: {refused}")
    return redirect("dashboard:dead-letters")


# -- API keys ----------------------------------------------------------------------------------


@dashboard_view()
def api_keys(request):
    tenant = request.ctx.tenant
    issued = None
    status = 200
    if request.method == "POST":
        if not request.ctx.can_write:
            return render(
                request,
                "dashboard/error.html",
                {"title": "Not allowed", "message": "Viewers cannot create keys."},
                status=403,
            )
        name = request.POST.get("name", "").strip()[:100]
        scope = request.POST.get("scope", ApiKey.Scope.WRITE)
        if not name:
            messages.error(request, "Give the key a name, such as the service that will use it.")
            status = 400
        elif scope not in ApiKey.Scope.values:
            messages.error(request, "Scope must be read or write.")
            status = 400
        else:
            issued = api_key_issue(tenant=tenant, name=name, scope=scope, created_by=request.user)
    keys = (
        ApiKey.objects.filter(tenant=tenant)
        .select_related("created_by")
        .order_by("revoked_at", "-created_at")
    )
    context = {"keys": keys, "issued": issued, "api_url": request.build_absolute_uri("/api/v1/")}
    return _no_store(render(request, "dashboard/api_keys.html", context, status=status))


@require_POST
@dashboard_view(write=True)
def api_key_revoke_view(request, key_id):
    key = ApiKey.objects.filter(tenant=request.ctx.tenant, pk=key_id).first()
    if key is None:
        raise Http404("no such key")
    if not request.ctx.is_owner and key.created_by_id != request.user.id:
        messages.error(request, "Only an owner can revoke someone else's key.")
    else:
        api_key_revoke(api_key=key)
        messages.success(request, f"Key {key.name} revoked; requests with it now get 401.")
    return redirect("dashboard:api-keys")


# -- tenant switch --------------------------------------------------------------------------------


@require_POST
@dashboard_view()
def switch_tenant(request):
    from accounts.models import Tenant

    tenant = Tenant.objects.filter(slug=request.POST.get("tenant", "")).first()
    if tenant is None or not tenancy.switch(request, tenant.id):
        messages.error(request, "You are not a member of that tenant.")
    target = request.POST.get("next", "")
    return redirect(
        target
        if target.startswith("/app/") and "//" not in target and "/jobs/" not in target
        else reverse("dashboard:overview")
    )
