"""Routes on the dashboard's pages: a function's routes (its page's Routes card) and a route's job's
request and response (the job page's exchange card, with its Replay form)."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template

from functions import selectors as function_selectors
from jobs.models import FINISHED
from routes import request as route_request
from routes import response as route_response
from routes import selectors
from routes.services import replay

register = template.Library()

PRESET_WORDS = {
    "github": "GitHub signature",
    "stripe": "Stripe signature",
    "slack": "Slack signature",
    "standard-webhooks": "Standard Webhooks signature",
}
BODY_SHOWN_CHARS = 20_000


def qualifier_choices(function) -> list[tuple[str, str]]:
    """(value, words) of every version and alias a route or a replay may name."""
    aliases = function_selectors.alias_list(function=function)
    versions = function_selectors.version_list(function=function)
    return [
        ("", "latest ready version"),
        *((a.name, f"alias {a.name} (v{a.version.number})") for a in aliases),
        *((str(v.number), f"version {v.number}") for v in versions),
    ]


def public_path(route) -> str:
    return f"/fn/{route.tenant.slug}{'' if route.path == '/' else route.path}"


def auth_words(auth: dict) -> str:
    """A route's auth in words: "anyone", "API key", "basic, user ada", "GitHub signature"."""
    kind = (auth or {}).get("type", "none")
    if kind == "api_key":
        return "API key of this tenant"
    if kind == "basic":
        return f"basic, user {auth.get('username', '')}"
    if kind == "hmac":
        preset = auth.get("preset", "")
        if preset == "custom":
            return f"HMAC-{auth.get('algorithm', 'sha256')} in {auth.get('header', '')}"
        return PRESET_WORDS.get(preset, preset)
    return "anyone"


@register.inclusion_tag("dashboard/_routes.html", takes_context=True)
def function_routes(context, function):
    request = context["request"]
    rows = [
        {
            "route": route,
            "url": f"{request.scheme}://{request.get_host()}{public_path(route)}",  # braces as they are
            "auth": auth_words(route.auth),
            "secret": (route.auth or {}).get("secret", ""),
        }
        for route in selectors.route_list(function=function)
    ]
    return {"request": request, "function": function, "rows": rows, "csrf_token": context.get("csrf_token")}


def _text(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(body)} bytes of binary data)"
    return text if len(text) <= BODY_SHOWN_CHARS else text[:BODY_SHOWN_CHARS] + "\n… (cut)"


def _request(stored: dict) -> dict:
    query = urlencode([(k, v) for k, values in (stored.get("query") or {}).items() for v in values])
    headers = [(name, value) for name, values in (stored.get("headers") or {}).items() for value in values]
    try:
        body = route_request.body_bytes(stored)
    except ValueError:
        body = b""
    return {
        "line": f"{stored.get('method', '')} {stored.get('path', '')}" + (f"?{query}" if query else ""),
        "headers": headers,
        "body": _text(body) if body else "",
        "client_ip": stored.get("client_ip", ""),
        "delivery_id": stored.get("delivery_id"),
        "route": stored.get("route", ""),
    }


def _response(job) -> dict | None:
    if job.status not in FINISHED:
        return None
    shaped = route_response.of_job(str(job.id), job.status, job.result, job.error, expose_errors=True)
    return {"status": shaped.status, "headers": shaped.headers, "body": _text(shaped.body)}


@register.inclusion_tag("dashboard/_route_exchange.html", takes_context=True)
def route_exchange(context, job):
    """The request the job got and the answer it gave (as the route sent it, its error shown here to
    the tenant), and the Replay form."""
    stored = job.args[0] if job.args and isinstance(job.args[0], dict) else {}
    request = context["request"]
    can_replay = request.ctx.can_write and job.function_id is not None
    qualifiers = []
    if can_replay:
        qualifiers = qualifier_choices(job.function)
    return {
        "request": request,
        "job": job,
        "sent": _request(stored),
        "answer": _response(job),
        "can_replay": can_replay,
        "qualifiers": qualifiers,
        "default_qualifier": replay.default_qualifier(job) if can_replay else "",
        "csrf_token": context.get("csrf_token"),
    }
