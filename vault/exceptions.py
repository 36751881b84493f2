"""Errors of the secrets store (see lambdasite/exceptions.py for the base)."""

from __future__ import annotations

from lambdasite.exceptions import Forbidden, LimitReached, NotFound, ServiceUnavailable, ValidationFailed


class SecretNotFound(NotFound):
    code = "secret_not_found"


class OwnersOnly(Forbidden):
    code = "owner_required"
    default_message = (
        "only owners set or delete secrets: use an owner's write key (or an operator key); members bind them"
    )


class SecretLimit(LimitReached):
    pass


class VaultUnavailable(ServiceUnavailable):
    """A stored key or value cannot be decrypted: its master key is not configured, or the row was
    altered. The platform's fault, never the caller's."""

    code = "secrets_unavailable"
    default_message = (
        "the secrets store cannot decrypt this tenant's secrets: an operator must check its keys"
    )


class UnknownSecret(ValidationFailed):
    """A binding names a secret the tenant does not have (at deploy: 400; at run time the job fails)."""

    code = "unknown_secret"
