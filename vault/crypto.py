"""Envelope encryption of secrets with AES-256-GCM (the ``cryptography`` package).

Each tenant has a random 256-bit data key; it is stored only wrapped (encrypted) under the
platform's master key, so a copy of the database alone reveals nothing, and rotating the master
re-wraps one small key per tenant instead of re-encrypting every secret. Each value is encrypted
under its tenant's data key with a fresh 96-bit random nonce (at most a few thousand encryptions
per key: far from GCM's 2^32 bound for random nonces).

The additional authenticated data binds every ciphertext to where it belongs: a data key to its
tenant, a value to its tenant, secret name and revision. A row copied to another tenant, another
name or another revision fails authentication instead of decrypting.

Master keys are named by an id derived from the key itself (no secret: a one-way hash of 256
random bits), stored beside each wrapped key, so a process holding both the new and the old
master (``SECRETS_KEY_OLD``) reads every row during a rotation, and the rotation knows which rows
are done."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

KEY_BYTES = 32
NONCE_BYTES = 12
FINGERPRINT_HEX = 12
SCHEME = 1  # AES-256-GCM, 96-bit random nonce, JSON-encoded AAD: stored with each wrapped key


class Undecryptable(Exception):
    """A ciphertext failed authentication, or its master key is not configured."""


@dataclass(frozen=True)
class MasterKey:
    key: bytes = field(repr=False)

    @property
    def id(self) -> str:
        return hashlib.sha256(b"lambdasite secrets master key id\x00" + self.key).hexdigest()[:16]


def current_master() -> MasterKey:
    return MasterKey(settings.SECRETS_KEY)


def keyring() -> dict[str, MasterKey]:
    """Every configured master key by id: the current one and those it replaced."""
    keys = [MasterKey(settings.SECRETS_KEY), *(MasterKey(k) for k in settings.SECRETS_KEY_OLD)]
    return {key.id: key for key in reversed(keys)}


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _aad(*parts) -> bytes:
    return json.dumps(["lambdasite", SCHEME, *parts], separators=(",", ":")).encode()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """-> (nonce, ciphertext with its tag)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(bytes(nonce), bytes(ciphertext), aad)
    except (InvalidTag, ValueError):
        raise Undecryptable("ciphertext failed authentication") from None


def wrap(master: MasterKey, data_key: bytes, *, tenant_id: int) -> bytes:
    """The data key encrypted under ``master`` for this tenant only: nonce + ciphertext."""
    nonce, ciphertext = seal(master.key, data_key, _aad("tenant-key", int(tenant_id)))
    return nonce + ciphertext


def unwrap(master: MasterKey, wrapped: bytes, *, tenant_id: int) -> bytes:
    wrapped = bytes(wrapped)
    return unseal(
        master.key, wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad("tenant-key", int(tenant_id))
    )


def secret_aad(*, tenant_id: int, name: str, number: int) -> bytes:
    return _aad("secret", int(tenant_id), name, int(number))


def fingerprint(data_key: bytes, value: bytes) -> str:
    """A short, tenant-keyed digest of a value: it tells revisions apart and lets an owner check
    which value is stored, and cannot be precomputed (or compared across tenants) without the
    tenant's data key."""
    digest = hmac.new(data_key, b"lambdasite secret fingerprint\x00" + value, hashlib.sha256)
    return digest.hexdigest()[:FINGERPRINT_HEX]
