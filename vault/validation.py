"""What a secret may be called and hold."""

from __future__ import annotations

import re

from django.conf import settings

from lambdasite.exceptions import PayloadTooLarge, ValidationFailed

from .models import NAME_PATTERN

NAME_RULE = "1-64 letters, digits, '_' or '-', starting with a letter or '_' (case-sensitive)"


def secret_name(name) -> str:
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise ValidationFailed(f"name: use {NAME_RULE}", details={"fields": {"name": [f"use {NAME_RULE}"]}})
    return name


def is_secret_name(name) -> bool:
    return isinstance(name, str) and re.match(NAME_PATTERN, name) is not None


def secret_value(value) -> bytes:
    """The value as stored (UTF-8): a non-empty string without NUL (it becomes an environment
    variable), at most SECRET_MAX_BYTES. Refusals never repeat the value."""

    def refuse(message: str) -> ValidationFailed:
        return ValidationFailed(f"value: {message}", details={"fields": {"value": [message]}})

    if not isinstance(value, str):
        raise refuse("must be a string")
    if not value:
        raise refuse("may not be empty")
    if "\x00" in value:
        raise refuse("may not contain NUL characters")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse("must be valid Unicode (no lone surrogates)") from None
    if len(data) > settings.SECRET_MAX_BYTES:
        raise PayloadTooLarge(
            f"value: {len(data)} bytes, over the cap of {settings.SECRET_MAX_BYTES}",
            details={"field": "value", "size": len(data), "limit": settings.SECRET_MAX_BYTES},
        )
    return data
