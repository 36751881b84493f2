"""The new-job form's strings turned into the API's JSON body, validated by the API's own serializer,
so the editor and the API accept exactly the same jobs."""

from __future__ import annotations

import json

from rest_framework.exceptions import ValidationError as DRFValidationError

from jobs.contract import JobSubmitSerializer

FIELDS = ("runtime", "handler", "code", "args", "timeout_ms", "memory_mb", "max_retries")


def parse_job_form(form: dict) -> tuple[dict, dict]:
    """-> (the validated body, errors by form field: empty when valid)."""
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
        try:
            body["dependencies"] = json.loads(form["dependencies"] or "{}")
        except (ValueError, RecursionError) as exc:
            errors["dependencies"] = f"not valid JSON: {exc}"
    for name in ("timeout_ms", "memory_mb", "max_retries"):
        value = str(form[name]).strip()
        if value:
            try:
                body[name] = int(value)
            except ValueError:
                errors[name] = "must be a whole number"
    if errors:
        return None, errors
    serializer = FunctionCreateSerializer(data=body)
    if not serializer.is_valid():
        for name, problems in serializer.errors.items():
            errors[name if name in form else "form"] = " ".join(str(p) for p in problems)
        return None, errors
    data = dict(serializer.validated_data)
    fields = set(VersionSpec.__dataclass_fields__)
    return VersionSpec(**{k: v for k, v in data.items() if k in fields}), errors
