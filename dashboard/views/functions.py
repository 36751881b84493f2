"""Functions: the list, deploying (a new function or its next version) from the editor, a function's
page (versions, aliases, invoke, recent jobs, code and diffs) and a version's page with its live
build log."""

from __future__ import annotations

import difflib
import json

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from functions import selectors
from functions.models import Function, FunctionVersion
from functions.services import aliases, deploy, invoke, warm
from jobs.services.submit import Origin
from lambdasite.errors import json_error
from lambdasite.exceptions import ApplicationError
from lambdasite.parsers import MAX_ARGS_DEPTH, args_problem, qualifier_problem, too_deep
from sandbox import RUNTIMES

from .. import tenancy
from ..examples import TEMPLATES
from ..forms import in_words, parse_deploy_form, reach_form, service_error
from ..tenancy import dashboard_view
from .common import LOG_PAGE, found_or_404, live_page, no_store, partial


def function_or_404(request, name: str) -> Function:
    """A function of the current tenant (the session's); another tenant's is simply not found."""
    return found_or_404(selectors.function_get(tenant_ids=[request.ctx.tenant.id], name=name), "function")


def version_or_404(function: Function, number) -> FunctionVersion:
    try:
        version = selectors.version_get(function=function, number=int(number))
    except (TypeError, ValueError):
        version = None
    return found_or_404(version, "version")


@dashboard_view()
def function_list(request):
    tenant = request.ctx.tenant
    functions = list(selectors.function_list(tenant_ids=[tenant.id]).prefetch_related("aliases__version"))
    stats = selectors.function_stats(functions=functions)
    latest = {
        v.function_id: v
        for v in FunctionVersion.objects.filter(function__in=functions).order_by("function_id", "-number")
        .distinct("function_id")
    }  # fmt: skip
    rows = [
        {
            "function": f,
            "latest": latest.get(f.pk),
            "aliases": [(a.name, a.version.number) for a in f.aliases.all()],
            **stats.get(f.pk, {"last_hour": 0, "last_status": None}),
        }
        for f in functions
    ]
    context = {"rows": rows, "live_ws": f"/ws/tenants/{tenant.slug}/"}
    return live_page(request, render(request, "dashboard/function_list.html", context))


def _deploy_form(request, function: Function | None) -> dict:
    if function is None:
        return {
            "name": "",
            "runtime": "python",
            "handler": "main",
            "code": TEMPLATES["python"],
            "requirements": "",
            "dependencies": "{}",
            "timeout_ms": "",
            "memory_mb": "",
            "max_retries": "",
            "description": "",
            **reach_form(None),
        }
    latest = function.versions.order_by("-number").first()
    return {
        "name": function.name,
        "runtime": function.runtime,
        "handler": latest.handler,
        "code": latest.code,
        "requirements": latest.requirements,
        "dependencies": json.dumps(latest.dependencies or {}, indent=2),
        "timeout_ms": latest.timeout_ms or "",
        "memory_mb": latest.memory_mb or "",
        "max_retries": latest.max_retries if latest.max_retries is not None else "",
        "description": latest.description,
        **reach_form(latest),
    }


def _deploy(request, function: Function | None):
    form = _deploy_form(request, function)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form = {**form, **{k: request.POST.get(k, "") for k in form if k in request.POST}}
        if function is not None:
            form["name"], form["runtime"] = function.name, function.runtime
        spec, errors = parse_deploy_form(form)
        if not errors:
            try:
                if function is None:
                    function, version = deploy.function_create(
                        tenant=request.ctx.tenant,
                        user=request.user,
                        name=form["name"],
                        runtime=form["runtime"],
                        spec=spec,
                    )
                else:
                    version = deploy.version_create(function=function, user=request.user, spec=spec)
                # the version page shows its status live; a status here would be stale when read
                messages.success(request, f"Deployed {function.name} version {version.number}.")
                return redirect("dashboard:function-version", name=function.name, number=version.number)
            except ApplicationError as exc:
                service_error(exc, form, errors)
        status = 400
    context = {
        "form": form,
        "errors": errors,
        "function": function,
        "runtimes": RUNTIMES,
        "templates": TEMPLATES,
        "quota": request.ctx.tenant.quota,
    }
    return render(request, "dashboard/function_deploy.html", context, status=status)


@dashboard_view(write=True)
def function_new(request):
    return _deploy(request, None)


@dashboard_view(write=True)
def function_deploy(request, name):
    return _deploy(request, function_or_404(request, name))


def _diff(a: FunctionVersion, b: FunctionVersion) -> list[tuple[str, str]]:
    """A unified diff of two versions' code and dependencies, as (css class, line) rows."""
    left = a.code.splitlines() + ["", "# dependencies"] + _deps(a).splitlines()
    right = b.code.splitlines() + ["", "# dependencies"] + _deps(b).splitlines()
    rows = []
    for line in difflib.unified_diff(left, right, f"version {a.number}", f"version {b.number}", lineterm=""):
        kind = "hunk" if line.startswith(("---", "+++", "@@")) else {"+": "add", "-": "del"}.get(line[:1], "")
        rows.append((kind, line))
    return rows


def _deps(version: FunctionVersion) -> str:
    return (
        version.requirements
        if version.function.runtime == "python"
        else json.dumps(version.dependencies, indent=2)
    )


@dashboard_view()
def function_detail(request, name):
    function = function_or_404(request, name)
    versions = list(selectors.version_list(function=function))
    shown = versions[0] if versions else None
    if request.GET.get("version"):
        shown = version_or_404(function, request.GET["version"])
    diff = None
    compare = request.GET.get("compare", "")
    if compare and shown is not None:
        other = version_or_404(function, compare)
        diff = {"from": other.number, "to": shown.number, "rows": _diff(other, shown)}
    context = {
        "function": function,
        "version_rows": [
            (v, versions[i + 1].number if i + 1 < len(versions) else None) for i, v in enumerate(versions)
        ],
        "shown": shown,
        "diff": diff,
        "aliases": list(selectors.alias_list(function=function)),
        "ready": [v for v in versions if v.status == "ready"],
        "jobs": selectors.recent_jobs(function=function),
        "latest_ready": selectors.latest_ready(function=function),
        "live_ws": f"/ws/tenants/{request.ctx.tenant.slug}/",
    }
    return live_page(request, render(request, "dashboard/function_detail.html", context))


@dashboard_view()
def version_detail(request, name, number):
    function = function_or_404(request, name)
    version = version_or_404(function, number)
    context = {"function": function, "version": version}
    if partial(request):
        return no_store(render(request, "dashboard/_version_summary.html", context))
    lines = selectors.build_log(version=version, limit=LOG_PAGE)
    context.update(
        lines=lines,
        last_seq=lines[-1].seq if lines else 0,
        deps=_deps(version),
        live_ws=f"/ws/builds/{version.pk}/",
    )
    return render(request, "dashboard/version_detail.html", context)


@dashboard_view()
def version_lines(request, name, number):
    """Build log lines after ``after`` as JSON: what the log pane fetches to catch up."""
    version = version_or_404(function_or_404(request, name), number)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        return json_error(400, "validation_failed", "after must be an integer")
    lines = selectors.build_log(version=version, after=after, limit=LOG_PAGE)
    body = [{"seq": x.seq, "stream": x.stream, "ts": x.ts.isoformat(), "text": x.text} for x in lines]
    return no_store(JsonResponse({"lines": body, "more": len(lines) == LOG_PAGE}))


def _act(request, name, action, done):
    function = function_or_404(request, name)
    try:
        result = action(function)
    except ApplicationError as exc:
        messages.error(request, in_words(exc.message))
        return redirect("dashboard:function-detail", name=function.name)
    if done:
        messages.success(request, done(result) if callable(done) else done)
    return result


def _alias_said(alias) -> str:
    said = f"Alias {alias.name} now points to version {alias.version.number}"
    if alias.additional_version is not None:
        said += (
            f" and sends {alias.additional_weight:.0%} of calls to version {alias.additional_version.number}"
        )
    return said + "."


@require_POST
@dashboard_view(write=True)
def function_alias(request, name):
    alias = request.POST.get("alias", "").strip()

    def act(function):
        extra = request.POST.get("additional_version") or None
        weight = request.POST.get("weight") or None
        return aliases.alias_set(
            function=function,
            name=alias,
            version=_int(request.POST.get("version")),
            additional_version=_int(extra) if extra else None,
            weight=_float(weight) if weight else None,
        )

    result = _act(request, name, act, lambda r: _alias_said(r[0]))
    return result if not isinstance(result, tuple) else redirect("dashboard:function-detail", name=name)


@require_POST
@dashboard_view(write=True)
def function_invoke(request, name):
    qualifier = request.POST.get("qualifier", "").strip()
    problem = qualifier_problem(qualifier) if qualifier else None
    if problem is not None:
        messages.error(request, f"Version or alias: {problem}.")
        return redirect("dashboard:function-detail", name=name)
    raw = (request.POST.get("args") or "[]").encode("utf-8", "replace")
    # the API's rules: the parser's depth bound before decoding, then args_problem
    args, problem = None, f"may not be nested deeper than {MAX_ARGS_DEPTH} levels"
    if not too_deep(raw):
        try:
            args = json.loads(raw)
        except (ValueError, RecursionError):
            problem = "must be a JSON array, e.g. [2, 3]"
        else:
            problem = args_problem(args)
    if problem is not None:
        messages.error(request, f"Arguments: {problem}.")
        return redirect("dashboard:function-detail", name=name)

    def act(function):
        job, _ = invoke.function_invoke(
            tenant=request.ctx.tenant,
            api_key=None,
            name=function.name,
            qualifier=qualifier or None,
            args=args,
            origin=Origin.of_user(request.user),
        )
        return job

    result = _act(request, name, act, None)
    return redirect("dashboard:job-detail", job_id=result.id) if hasattr(result, "status") else result


FLOW_FORM = ("max_concurrency", "reserved_concurrency", "concurrency_key", "concurrency_per_key")


@require_POST
@dashboard_view(write=True)
def function_flow(request, name):
    """The flow-control form: blank numbers clear a ceiling, a blank key removes the key."""
    given = {}
    for field in FLOW_FORM:
        text = request.POST.get(field, "").strip()
        if field == "concurrency_key":
            given[field] = text
        elif not text:
            given[field] = 0 if field == "reserved_concurrency" else None
        else:
            given[field] = _int(text) if text.isdigit() else -1  # refused by the service, in words
    result = _act(
        request,
        name,
        lambda f: deploy.function_update(function=f, **given),
        f"Flow control of {name} saved.",
    )
    return redirect("dashboard:function-detail", name=name) if hasattr(result, "tenant_id") else result


@require_POST
@dashboard_view(write=True)
def function_warm(request, name):
    result = _act(
        request,
        name,
        lambda f: warm.warm_request(function=f, count=1),
        lambda r: f"A warm cell for version {r[0].number} is starting.",
    )
    return redirect("dashboard:function-detail", name=name) if isinstance(result, tuple) else result


@require_POST
@dashboard_view(write=True)
def function_delete(request, name):
    result = _act(request, name, lambda f: deploy.function_delete(function=f), f"Deleted {name}.")
    return redirect("dashboard:functions") if isinstance(result, int) else result


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1  # refused by the service with a clear message


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return -1.0


__all__ = ["tenancy"]
