"""API key format and hashing.

Format ``lsk_<8-char id>_<43-char secret>``: the id is public and indexed so a
lookup is one query; the stored value is ``HMAC-SHA256(SECRET_KEY, key)``, a
fast keyed hash rather than a password hasher, because keys carry 256 bits of
randomness (nothing to brute-force) and a slow hash would add ~0.4 s to every
request. Comparison uses ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

from django.conf import settings

KEY_RE = re.compile(r"^lsk_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_key() -> tuple[str, str]:
    """Return (key_id, plaintext key)."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    return key_id, f"lsk_{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), key.encode(), hashlib.sha256).hexdigest()


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    match = KEY_RE.match(key or "")
    return match.group(1) if match else None


def matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
