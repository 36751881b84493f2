"""How a submit, an invocation or a function says where it runs, in the API: the ``pool`` shorthand
and the ``placement`` object (checked whole by ``jobs.placement``), and the placement's schema."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lambdasite.api.fields import StrictCharField

from .placement import MAX_AFTER_WAIT_S, MAX_OVERFLOW, PlacementInvalid, parse_placement


class PlacementSchema(serializers.Serializer):
    """A placement (jobs.placement), declared for the schema: the rules are jobs.placement's."""

    pool = serializers.CharField(required=False, help_text="the home pool (default: default)")
    overflow = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=f"at most {MAX_OVERFLOW} other pools, tried in order once the job has waited",
    )
    after_wait_s = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text=f"seconds of waiting before overflow (over 0, at most {MAX_AFTER_WAIT_S:g}); "
        "required with overflow",
    )


@extend_schema_field(PlacementSchema)
class PlacementField(serializers.JSONField):
    """``placement``: checked whole by jobs.placement (with ``pool``) in ``placement_from``."""


def placement_fields() -> tuple[StrictCharField, PlacementField]:
    """The ``pool`` shorthand and the ``placement`` object of a submit, an invocation or a function."""
    return (
        StrictCharField(
            required=False, max_length=64, help_text='the worker pool to run in (shorthand of {"pool": ...})'
        ),
        PlacementField(
            required=False,
            help_text="where to run: a home pool, and pools to overflow to after after_wait_s of waiting "
            "(not with pool); left out: the function's placement, else the default pool",
        ),
    )


def placement_from(attrs: dict) -> dict:
    """``pool`` or ``placement`` (not both) as one checked ``placement`` (absent when not given)."""
    given = {name: attrs.pop(name) for name in ("pool", "placement") if name in attrs}
    try:
        found = parse_placement(given)
    except PlacementInvalid as exc:
        field, _, inner = exc.field.partition(".")
        message = f"{inner}: {exc.message}" if inner else exc.message
        raise serializers.ValidationError({field: [message]}) from None
    if found is not None:
        attrs["placement"] = found
    return attrs
