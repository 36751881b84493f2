"""The dashboard's forms: the editors' (a new job, a deploy) turned into the API's JSON bodies, validated
by the API's own serializers, so the editors and the API accept exactly the same jobs and functions; and
every form's refusals worded for a person: beside the field, in the words of its visible label, with no
API field name (``timeout_ms``) anywhere on the page."""

from __future__ import annotations

import json
import re

from jobs.contract import JobSubmitSerializer
from vault.validation import NAME_RULE as SECRET_NAME_RULE
from vault.validation import is_secret_name

FIELDS = ("runtime", "handler", "code", "args", "timeout_ms", "memory_mb", "max_retries")
LIMITS = ("timeout_ms", "memory_mb", "max_retries")
REACH_FIELDS = ("egress_mode", "egress_allow", "secrets", "env")  # the deploy and new-job forms' network box

# The visible label of each form field, by the name the API (and so a service's refusal) gives it. One
# map for every form: a name means the same thing wherever it appears.
LABELS = {
    "runtime": "Runtime",
    "handler": "Handler",
    "code": "Code",
    "args": "Arguments",
    "timeout_ms": "Timeout (ms)",
    "memory_mb": "Memory (MB)",
    "max_retries": "Retries",
    "name": "Name",
    "requirements": "Requirements",
    "dependencies": "Dependencies",
    "description": "Description",
    "function": "Function",
    "qualifier": "Version or alias",
    "cron": "Cron",
    "timezone": "Time zone",
    "overlap": "If still running",
    "catch_up": "Ticks missed while down",
    "max_failures": "Pause after failures",
    "url": "URL",
    "events": "Events",
    "email": "Email",
    "role": "Role",
    "scope": "Scope",
    "alias": "Alias",
    "version": "Version",
    "additional_version": "Canary version",
    "weight": "Canary share",
    "provisioned": "Warm cells",
    "run_at": "Run at",
    "delay_s": "Delay (s)",
    "callback_url": "Callback URL",
    "password": "Password",
    "egress": "Egress",
    "secrets": "Secrets",
    "env": "Environment",
    "max_concurrency": "Max at once",
    "reserved_concurrency": "Reserved",
    "concurrency_key": "Concurrency key",
    "concurrency_per_key": "Per key",
    "priority": "Priority",
}
# DRF's stock sentences, said as the rest of a sentence that starts with the field's label.
_DRF_WORDS = (
    (re.compile(r"Ensure this value is greater than or equal to (.+?)\.?$"), r"must be at least \1"),
    (re.compile(r"Ensure this value is less than or equal to (.+?)\.?$"), r"must be at most \1"),
    (
        re.compile(r"Ensure this field has no more than (\d+) characters\.?$"),
        r"must be at most \1 characters",
    ),
    (re.compile(r"Ensure this field has at least (\d+) characters\.?$"), r"must be at least \1 characters"),
    (re.compile(r"A valid integer is required\.?$"), "must be a whole number"),
    (re.compile(r"A valid number is required\.?$"), "must be a number"),
    (re.compile(r"This field is required\.?$"), "is required"),
    (re.compile(r"This field may not be null\.?$"), "is required"),
    (re.compile(r"This field may not be blank\.?$"), "may not be blank"),
    (re.compile(r"Not a valid string\.?$"), "must be text"),
)
_CONTINUES = ("must ", "may ", "is ", "are ", "needs ", "has ", "cannot ", "should ")
# An API name in running text: one of LABELS' keys with an underscore (plain words such as "code" or
# "version" read the same as their labels), or any "name: " that starts a message.
_API_NAMES = re.compile(
    r"\b(" + "|".join(sorted((n for n in LABELS if "_" in n), key=len, reverse=True)) + r")\b"
)
_PREFIX = re.compile(r"^([a-z][a-z0-9_]*): ")
# Refusals that name no field but are about one: the name or address already taken.
_FIELD_OF_CODE = {"function_exists": "name", "schedule_exists": "name", "already_member": "email"}


def parse_job_form(form: dict) -> tuple[dict, dict]:
    """-> (the validated body, errors by form field: empty when valid)."""
    errors: dict[str, str] = {}
    body: dict = {
        "runtime": form["runtime"],
        "code": form["code"].replace("\r\n", "\n"),
        "handler": form["handler"] or "main",
    }
    _parse_json(form, "args", "[]", body, errors)
    _parse_limits(form, body, errors)
    if "egress_mode" in form:
        _parse_reach(form, body, errors)
    if errors:
        return body, errors
    data = _validate(JobSubmitSerializer, body, form, errors)
    return (body, errors) if data is None else (data, errors)


def parse_deploy_form(form: dict):
    """The deploy editor's strings as the API's body, validated by the API's serializer.
    -> (a VersionSpec, errors by form field: empty when valid)."""
    from functions.api.serializers import FunctionCreateSerializer
    from functions.services.deploy import VersionSpec

    errors: dict[str, str] = {}
    body: dict = {
        "name": form["name"].strip(),
        "runtime": form["runtime"],
        "code": form["code"].replace("\r\n", "\n"),
        "handler": form["handler"].strip() or "main",
        "description": form["description"],
    }
    if form["runtime"] == "python":
        body["requirements"] = form["requirements"].replace("\r\n", "\n")
    else:
        _parse_json(form, "dependencies", "{}", body, errors)
    _parse_limits(form, body, errors)
    if "egress_mode" in form:
        _parse_reach(form, body, errors)
    if errors:
        return None, errors
    data = _validate(FunctionCreateSerializer, body, form, errors)
    if data is None:
        return None, errors
    fields = set(VersionSpec.__dataclass_fields__)
    return VersionSpec(**{k: v for k, v in data.items() if k in fields}), errors


def reach_form(source) -> dict:
    """The network and configuration fields of the deploy and new-job forms, as ``source`` (a
    function version, or a job run again) has them (None: nothing): egress mode, one pattern a line,
    one ``NAME=value`` a line."""
    if source is None:
        return {"egress_mode": "none", "egress_allow": "", "secrets": "", "env": ""}
    return {
        "egress_mode": source.egress_mode,
        "egress_allow": "\n".join(source.egress_allow),
        "secrets": "\n".join(f"{name}={secret}" for name, secret in sorted(source.secrets.items())),
        "env": "\n".join(f"{name}={value}" for name, value in sorted(source.env.items())),
    }


def _parse_reach(form: dict, body: dict, errors: dict) -> None:
    """body's egress, secrets and env from the form's fields (the service checks what they say)."""
    mode = form["egress_mode"]
    patterns = [line.strip() for line in form["egress_allow"].splitlines() if line.strip()]
    if mode == "allowlist":
        body["egress"] = patterns
        if not patterns:
            errors["egress"] = "list at least one host:port, or choose none"
    elif mode in ("none", "public"):
        body["egress"] = mode
    else:
        errors["egress"] = "choose none, allowlist or public"
    for name in ("secrets", "env"):
        pairs, problem = _lines_of_pairs(form[name], secrets=name == "secrets")
        if problem:
            errors[name] = problem
        else:
            body[name] = pairs


def _lines_of_pairs(text: str, *, secrets: bool) -> tuple[dict, str | None]:
    """``NAME=value`` lines (blank lines skipped) -> ({NAME: value}, None), or ({}, what is wrong).
    With ``secrets``, each value is a secret's name (spaces around it dropped)."""
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name:
            return {}, f"line {number}: write NAME=value"
        if name in pairs:
            return {}, f"line {number}: {name} is given twice"
        if "\x00" in value:
            return {}, f"line {number}: NUL characters are not allowed"
        if secrets:
            value = value.strip()
            if not is_secret_name(value):
                return {}, f"line {number}: {value!r} is not a secret name ({SECRET_NAME_RULE})"
        pairs[name] = value
    return pairs, None


def _parse_json(form: dict, name: str, empty: str, body: dict, errors: dict) -> None:
    """body[name] from the field's JSON (empty: the value of a blank field), or an error."""
    try:
        body[name] = json.loads(form[name] or empty)
    except (ValueError, RecursionError) as exc:
        errors[name] = beside(name, f"not valid JSON ({exc})")


def _parse_limits(form: dict, body: dict, errors: dict) -> None:
    """The filled-in limits as integers (blank: the default), or an error each."""
    for name in LIMITS:
        value = str(form[name]).strip()
        if value:
            try:
                body[name] = int(value)
            except ValueError:
                errors[name] = beside(name, "must be a whole number")


def _validate(serializer_class, body: dict, form: dict, errors: dict) -> dict | None:
    """The serializer's validated data, or None with its errors put under the form's fields
    (an error of a field the form does not have goes under "form")."""
    serializer = serializer_class(data=body)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    for name, problems in serializer.errors.items():
        said = " ".join(str(p) for p in problems)
        if _shown_in(form, name):
            errors[name] = beside(name, said)
        else:
            errors["form"] = in_words(said if name == "non_field_errors" else f"{name}: {said}")
    return None


def label(name: str) -> str:
    """The visible label of a form field named as the API names it."""
    return LABELS.get(name) or name.replace("_", " ").capitalize()


def problem_words(text: str, name: str | None = None) -> str:
    """A refusal of the field ``name`` as the rest of a sentence: its "name: " prefix dropped, DRF's
    stock sentences reworded, any other API name said by its label."""
    text = str(text).strip()
    if name and text.startswith(f"{name}: "):
        text = text[len(name) + 2 :]
    elif name and text.startswith(f"{name} ") and text[len(name) + 1 :].startswith(_CONTINUES):
        text = text[len(name) + 1 :]  # "role must be one of …": the label will say whose
    for pattern, words in _DRF_WORDS:
        if pattern.match(text):
            text = pattern.sub(words, text)
            break
    return _API_NAMES.sub(lambda m: label(m.group(1)), text)


def beside(name: str, text: str) -> str:
    """The error shown beside a field: a sentence that starts with the field's label,
    "Timeout (ms) must be at least 100." or "Cron: bad minute."."""
    words = problem_words(text, name).rstrip(".")
    if not words:
        return ""
    if words.startswith(_CONTINUES):
        return f"{label(name)} {words}."
    return f"{label(name)}: {words[0].lower() + words[1:] if words[1:2].islower() else words}."


def in_words(message: str) -> str:
    """A refusal shown above a form (of no one field, or of a field the form lacks): its API names said
    by their labels, "run_at: at most 30 days ahead" -> "Run at: at most 30 days ahead"."""
    message = str(message)
    found = _PREFIX.match(message)
    if found:
        message = f"{label(found.group(1))}: {message[found.end() :]}"
    return _API_NAMES.sub(lambda m: label(m.group(1)), message)


def service_error(exc, form: dict, errors: dict) -> None:
    """A service's refusal put beside the form field it names, worded with that field's label (the API's
    field name never reaches the page); a refusal of no field of this form goes above it, in words."""
    details = exc.details or {}
    field = (
        details.get("field") or next(iter(details.get("fields") or {}), None) or _FIELD_OF_CODE.get(exc.code)
    )
    if _shown_in(form, field):
        errors[field] = beside(field, exc.message)
    else:
        errors["form"] = in_words(exc.message)


def _shown_in(form: dict, name: str | None) -> bool:
    """Whether the form has a place for ``name``'s errors (egress's: below its allowed hosts)."""
    return name in form or (name == "egress" and "egress_mode" in form)
