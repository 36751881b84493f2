"""A response body as DRF's JSONRenderer writes it, without a renderer: for code that renders once
and sends the bytes later (the finished body a worker publishes, the fast path's answers)."""

from __future__ import annotations

import json

from rest_framework.utils.encoders import JSONEncoder


def render_json(data) -> bytes:
    """Bytes exactly as DRF's JSONRenderer writes them with this project's settings."""
    text = json.dumps(data, cls=JSONEncoder, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()
