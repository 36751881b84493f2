"""The OpenAPI document states the rules the server enforces: one postprocessing hook for all of it.

drf-spectacular describes a serializer's declared fields, not what its ``to_internal_value``, its
``validate_*`` methods or the services do with them. This hook adds those rules to the schema of
every request, reading them from the same serializers, settings and quota defaults the server
uses, so a generated client (and Schemathesis, in ``lambdasite/tests/test_schemathesis.py``)
knows what will be refused before sending it:

- a serializer that refuses unknown fields gets ``additionalProperties: false``;
- DRF's text fields refuse NUL and, when trimmed, a blank value: said with a ``pattern``;
- ``args`` is a JSON array; qualifiers, handlers and callback URLs have their patterns;
- a number capped by the tenant's quota has the default quota's cap as its ``maximum``
  (a tenant's own caps are listed by ``GET /api/v1/runtimes``);
- every operation that takes a body may answer 415 (not JSON) and 400 (malformed JSON), and
  every 4xx answer is the error envelope."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers

# A string without NUL (PostgreSQL's text refuses it; DRF's CharField refuses it too).
NO_NUL = "^[^\\u0000]*$"
# The same, holding at least one character that is not whitespace (a trimmed CharField's "blank").
NOT_BLANK = "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$"
# What Django's URLValidator accepts and the SSRF rule's literal check lets through, narrowed to names:
# http(s), labels of letters, digits and hyphens, a letter TLD, an optional port and path.
HTTP_URL = "^https?://([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.){1,2}[a-z]{2,63}(:[1-9][0-9]{0,3})?(/[!-~]*)?$"

ENVELOPE = {"$ref": "#/components/schemas/Error"}
# A JSON value the API stores (lambdasite.parsers' json_problem): no NUL in any string.
JSON_VALUE = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE_SCHEMA = {
    "nullable": True,
    "anyOf": [
        {"type": "boolean"},
        {"type": "number"},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": JSON_VALUE},
        {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": JSON_VALUE},
    ],
}
_ENVELOPE_TEXT = {
    400: "invalid input (the message names the field)",
    415: "the body is not application/json",
}


def _quota_default(name: str) -> int:
    from accounts.models import Quota

    return Quota._meta.get_field(name).default


def _caps() -> dict[str, int]:
    """Field name -> the largest value a tenant with the default quota may send."""
    return {
        "timeout_ms": _quota_default("max_timeout_ms"),
        "memory_mb": _quota_default("max_memory_mb"),
        "max_retries": _quota_default("max_retries_cap"),
        "delay_s": settings.JOB_MAX_DELAY_S,
        "count": settings.FUNCTION_WARM_MAX,
    }


def _names() -> dict[str, str]:
    """Field or path parameter name -> the pattern its value must match."""
    from functions.models import NAME_PATTERN
    from functions.validation import ALIAS_PATTERN
    from vault.models import NAME_PATTERN as SECRET_NAME_PATTERN

    return {
        "name": NAME_PATTERN,
        "function": NAME_PATTERN,
        "alias": ALIAS_PATTERN,
        "secret_name": SECRET_NAME_PATTERN,
    }


def strict_requests(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry: the server's rules, added to the document."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["JsonValue"] = JSON_VALUE_SCHEMA
    for component in list(generator.registry._components.values()):
        serializer = component.object
        if component.type != "schemas" or not isinstance(serializer, serializers.BaseSerializer):
            continue
        schema = schemas.get(component.name)
        if schema is None or not component.name.endswith("Request"):
            continue
        _request_rules(serializer, schema)
    names = _names()
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            _answers(operation, method)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in names:
                    parameter["schema"]["pattern"] = names[parameter["name"]]
    return result


def _request_rules(serializer: serializers.Serializer, schema: dict) -> None:
    if _refuses_unknown_fields(serializer):
        schema["additionalProperties"] = False
    properties = schema.get("properties", {})
    caps, names = _caps(), _names()
    if "run_at" in properties and "delay_s" in properties:  # when_from: one or the other
        schema["not"] = {"required": ["run_at", "delay_s"]}
    for name, field in serializer.fields.items():
        prop = properties.get(name)
        if prop is None or field.read_only:
            continue
        _field_rules(field, prop)
        if name in caps and prop.get("type") == "integer":
            prop["maximum"] = min(caps[name], prop.get("maximum", caps[name]))
        if name == "code":  # validate_code: not blank, no NUL, even untrimmed
            prop["pattern"] = NOT_BLANK
        if name in names and prop.get("type") == "string":
            prop["pattern"] = names[name]
        if name == "dependencies":  # package.json's dependencies: names to version ranges
            prop.update({"type": "object", "additionalProperties": {"type": "string"}})
        if name == "url" and prop.get("type") == "string":  # a webhook endpoint's URL
            prop["pattern"] = HTTP_URL
        if isinstance(field, serializers.ListSerializer) and not field.allow_empty:
            prop["minItems"] = max(1, prop.get("minItems", 0))


def _field_rules(field: serializers.Field, prop: dict) -> None:
    from jobs.contract import HANDLER_RE
    from lambdasite.api.fields import ArgsField, JsonValueField, QualifierField, WebhookURLField

    if isinstance(field, ArgsField):
        prop.clear()
        prop.update({"type": "array", "items": JSON_VALUE, "description": field.help_text or "JSON array"})
        return
    if isinstance(field, JsonValueField):  # an event's data: any JSON value the API stores
        prop.clear()
        prop.update({**JSON_VALUE, "description": field.help_text or "any JSON value"})
        return
    if isinstance(field, QualifierField):
        prop["pattern"] = "^([A-Za-z0-9_-]{1,64})?$" if field.allow_blank else "^[A-Za-z0-9_-]{1,64}$"
        return
    if isinstance(field, WebhookURLField):  # Django's URLValidator, laxer than RFC 3986's "uri"
        prop.pop("format", None)
        prop["pattern"] = HTTP_URL
        return
    if field.field_name == "handler":
        prop["pattern"] = HANDLER_RE
        return
    if isinstance(field, serializers.CharField) and "pattern" not in prop and "enum" not in prop:
        if not field.allow_blank and getattr(field, "trim_whitespace", False):
            prop["pattern"] = NOT_BLANK
        elif any(isinstance(v, ProhibitNullCharactersValidator) for v in field.validators):
            prop["pattern"] = NO_NUL
    if isinstance(field, serializers.ListField) and not field.allow_empty:
        prop["minItems"] = max(1, prop.get("minItems", 0))


_PROBE = "\x00unknown"


def _refuses_unknown_fields(serializer: serializers.BaseSerializer) -> bool:
    """Whether the serializer refuses a field it does not declare: asked of the serializer itself."""
    if isinstance(serializer, serializers.ListSerializer):
        serializer = serializer.child
    probe = type(serializer)(data={_PROBE: None})
    probe.is_valid()
    return _PROBE in probe.errors


def _answers(operation: dict, method: str = "get") -> None:
    """Every 4xx is the envelope; a body that is not JSON is a 415, and malformed JSON a 400; any
    write may be throttled (429, ``accounts.throttle.TenantWriteThrottle`` or admission)."""
    responses = operation.setdefault("responses", {})
    if method.lower() in ("post", "put", "patch", "delete"):
        responses.setdefault(
            "429",
            {
                "description": "over a per-tenant rate (writes, deploys, submissions): see Retry-After",
                "content": {"application/json": {"schema": ENVELOPE}},
            },
        )
    if "requestBody" in operation:
        for status, text in _ENVELOPE_TEXT.items():
            responses.setdefault(
                str(status), {"description": text, "content": {"application/json": {"schema": ENVELOPE}}}
            )
    for status, answer in responses.items():
        if status.startswith("4") and "content" not in answer:
            answer["content"] = {"application/json": {"schema": ENVELOPE}}
