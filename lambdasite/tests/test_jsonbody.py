"""lambdasite.jsonbody: the bytes DRF's JSONRenderer would send, to the byte."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.renderers import JSONRenderer

from lambdasite.jsonbody import render_json


def test_it_writes_what_drfs_renderer_writes():
    data = {
        "text": "café \u2028 \u2029 </script> \ud7ff",
        "id": uuid.UUID(int=7),
        "at": datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
        "cost": Decimal("0.000017"),
        "nested": [1, 2.5, None, True, {"k": []}],
    }
    assert render_json(data) == JSONRenderer().render(data)


def test_it_refuses_what_is_not_json():
    with pytest.raises(ValueError):
        render_json({"x": float("nan")})
