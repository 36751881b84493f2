"""The editors' forms (a new job, a deploy) turned into the API's JSON bodies, validated by the API's own
serializers, so the editors and the API accept exactly the same jobs and functions."""

from __future__ import annotations

import json

from jobs.contract import JobSubmitSerializer

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
    if errors:
        return None, errors
    data = _validate(FunctionCreateSerializer, body, form, errors)
    if data is None:
        return None, errors
    fields = set(VersionSpec.__dataclass_fields__)
    return VersionSpec(**{k: v for k, v in data.items() if k in fields}), errors


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
