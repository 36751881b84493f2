"""Helpers of the tests that talk to a running server (uvicorn started by the test) over HTTP."""

from __future__ import annotations

import json
import urllib.request


def post_json(url: str, key: str, body: dict, *, timeout: float) -> tuple[int, dict]:
    """POST ``body`` as JSON with the API key as its bearer token. -> (status, decoded answer)"""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())
