"""The editors' forms (a new job, a deploy) turned into the API's JSON bodies, validated by the API's own
serializers, so the editors and the API accept exactly the same jobs and functions."""

from __future__ import annotations

import json

from jobs.contract import JobSubmitSerializer
from vault.validation import NAME_RULE as SECRET_NAME_RULE
from vault.validation import is_secret_name

FIELDS = ("runtime", "handler", "code", "args", "timeout_ms", "memory_mb", "max_retries")
LIMITS = ("timeout_ms", "memory_mb", "max_retries")


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


def reach_form(version) -> dict:
    """The deploy form's network and configuration fields, as ``version`` has them (None: a new
    function's): egress mode, one pattern a line, one ``NAME=value`` a line."""
    if version is None:
        return {"egress_mode": "none", "egress_allow": "", "secrets": "", "env": ""}
    return {
        "egress_mode": version.egress_mode,
        "egress_allow": "\n".join(version.egress_allow),
        "secrets": "\n".join(f"{name}={secret}" for name, secret in sorted(version.secrets.items())),
        "env": "\n".join(f"{name}={value}" for name, value in sorted(version.env.items())),
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
        errors[name] = f"not valid JSON: {exc}"


def _parse_limits(form: dict, body: dict, errors: dict) -> None:
    """The filled-in limits as integers (blank: the default), or an error each."""
    for name in LIMITS:
        value = str(form[name]).strip()
        if value:
            try:
                body[name] = int(value)
            except ValueError:
                errors[name] = "must be a whole number"


def _validate(serializer_class, body: dict, form: dict, errors: dict) -> dict | None:
    """The serializer's validated data, or None with its errors put under the form's fields
    (an error of a field the form does not have goes under "form")."""
    serializer = serializer_class(data=body)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    for name, problems in serializer.errors.items():
        errors[name if name in form else "form"] = " ".join(str(p) for p in problems)
    return None


def service_error(exc, form: dict, errors: dict) -> None:
    """A service's refusal put beside the form field it names, worded for that place: the API's
    field-name prefix ("timeout_ms: …") is dropped beside the field, since the field's label says it;
    a refusal of no field of this form goes under "form"."""
    details = exc.details or {}
    field = details.get("field") or next(iter(details.get("fields") or {}), None)
    if field in form:
        errors[field] = exc.message.removeprefix(f"{field}: ")
    else:
        errors["form"] = exc.message
