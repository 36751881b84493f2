"""Helpers of the vault tests: actors and a master key of the test's own."""

from __future__ import annotations

import base64
import os

from vault.services import Actor

OWNER = Actor(label="owner@test", is_owner=True)
MEMBER = Actor(label="member@test", is_owner=False)


def new_master_key() -> bytes:
    return os.urandom(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()
