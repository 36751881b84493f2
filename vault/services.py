"""Setting, rotating and deleting secrets, and reading their values for a run.

Values leave this module only through ``secret_values`` (for the worker that binds them to a
job); nothing else returns, logs or raises with a value in it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.guards import tenant_require_active
from accounts.models import Tenant
from lambdasite.caching import after_commit
from lambdasite.redis_client import get_redis

from . import crypto, validation
from .exceptions import OwnersOnly, SecretLimit, SecretNotFound, UnknownSecret, VaultUnavailable
from .models import Secret, SecretRevision, TenantKey

log = logging.getLogger("lambdasite.vault")

# bumped after every change of a secret's value: a process that keeps values (a route's signing key,
# routes/services/table.py) keeps them while it is unchanged
GENERATION_KEY = "lambdasite:vault-generation"


def _changed() -> None:
    # a lost bump: the keeper's own age cap bounds how long it keeps the old value
    after_commit("publishing a secret's change", lambda: get_redis().incr(GENERATION_KEY))


@dataclass(frozen=True)
class Actor:
    """Who changes a secret: ``label`` is recorded and shown ("alice@example.com", "API key ci
    (lsk_ab12cd34)"); only an owner (a user who is an owner, an owner's write key, a write-scoped
    operator key) may change secrets."""

    label: str
    is_owner: bool
    user: Any = None


class BoundSecret(NamedTuple):
    env_name: str
    value: str
    revision: int
    secret_name: str


def _data_key(key_row: TenantKey, keys: Mapping[str, crypto.MasterKey] | None = None) -> bytes:
    master = (keys if keys is not None else crypto.keyring()).get(key_row.master_key_id)
    if master is None:
        extra = {"event": "vault_master_missing", "tenant": key_row.tenant_id}
        log.error(
            "no master key %s (of a tenant's data key) is configured", key_row.master_key_id, extra=extra
        )
        raise VaultUnavailable()
    try:
        return crypto.unwrap(master, key_row.wrapped, tenant_id=key_row.tenant_id)
    except crypto.Undecryptable:
        extra = {"event": "vault_key_corrupt", "tenant": key_row.tenant_id}
        log.error("a tenant's data key failed authentication", extra=extra)
        raise VaultUnavailable() from None


def _locked_data_key(tenant: Tenant) -> bytes:
    """The tenant's data key, its row locked for this transaction (made on first use). The lock
    serialises a tenant's secret writes."""
    row = TenantKey.objects.select_for_update().filter(tenant=tenant).first()
    if row is None:
        master = crypto.current_master()
        try:
            with transaction.atomic():
                TenantKey.objects.create(
                    tenant=tenant,
                    wrapped=crypto.wrap(master, crypto.new_data_key(), tenant_id=tenant.pk),
                    master_key_id=master.id,
                    scheme=crypto.SCHEME,
                )
        except IntegrityError:  # made by a concurrent first write: use theirs
            pass
        row = TenantKey.objects.select_for_update().get(tenant=tenant)
    return _data_key(row)


def _require_owner(actor: Actor) -> None:
    if not actor.is_owner:
        raise OwnersOnly()


@sensitive_variables("value", "data")
@transaction.atomic
def secret_put(*, tenant: Tenant, name: str, value: str, actor: Actor) -> SecretRevision:
    """Create the secret, or rotate it: a new revision holding ``value``; the previous value is
    erased. -> the new revision (number 1 of a new secret: ``revision.created``)."""
    _require_owner(actor)
    validation.secret_name(name)
    data = validation.secret_value(value)
    tenant_require_active(tenant)
    data_key = _locked_data_key(tenant)
    now = timezone.now()
    secret = Secret.objects.select_for_update().filter(tenant=tenant, name=name).first()
    created = secret is None or secret.deleted_at is not None
    if created:
        _check_room(tenant)
    if secret is None:
        secret = Secret.objects.create(tenant=tenant, name=name, created_at=now, updated_at=now)
    number = secret.latest_number + 1
    nonce, ciphertext = crypto.seal(
        data_key, data, crypto.secret_aad(tenant_id=tenant.pk, name=name, number=number)
    )
    SecretRevision.objects.filter(secret=secret).exclude(ciphertext=b"").update(nonce=b"", ciphertext=b"")
    revision = SecretRevision.objects.create(
        secret=secret,
        number=number,
        nonce=nonce,
        ciphertext=ciphertext,
        fingerprint=crypto.fingerprint(data_key, data),
        size_bytes=len(data),
        created_by=actor.user,
        created_by_label=actor.label[:200],
    )
    secret.latest_number, secret.updated_at, secret.deleted_at = number, now, None
    if created:
        secret.created_at = now
    secret.save()
    revision.created = created
    _changed()
    extra = {"event": "secret_set", "tenant": tenant.slug}
    log.info("secret %s set: revision %d, by %s", name, number, actor.label, extra=extra)
    return revision


def _check_room(tenant: Tenant) -> None:
    cap = tenant.quota.max_secrets
    if Secret.objects.filter(tenant=tenant, deleted_at=None).count() >= cap:
        raise SecretLimit(
            f"this tenant has {cap} secrets, its cap: delete one, or ask an operator to raise max_secrets",
            details={"quota": "max_secrets", "limit": cap},
        )


@transaction.atomic
def secret_delete(*, tenant: Tenant, name: str, actor: Actor) -> None:
    """Delete a secret: its value is erased at once (its revisions' metadata stays, and setting the
    name again continues their numbers). Versions binding it keep the binding; their jobs fail
    with ``unknown_secret`` until it is set again."""
    _require_owner(actor)
    tenant_require_active(tenant)
    secret = Secret.objects.select_for_update().filter(tenant=tenant, name=name, deleted_at=None).first()
    if secret is None:
        raise SecretNotFound(f"no secret named {name}")
    SecretRevision.objects.filter(secret=secret).update(nonce=b"", ciphertext=b"")
    secret.deleted_at = secret.updated_at = timezone.now()
    secret.save(update_fields=["deleted_at", "updated_at"])
    _changed()
    log.info(
        "secret %s deleted by %s", name, actor.label, extra={"event": "secret_deleted", "tenant": tenant.slug}
    )


@sensitive_variables("data_key", "found")
def secret_values(*, tenant: Tenant, bindings: Mapping[str, str]) -> list[BoundSecret]:
    """The current value of each bound secret, as (env_name, value, revision, secret_name), in the
    order of ``bindings`` ({env name: secret name}). A secret the tenant does not have (deleted, or
    never set) is an ``UnknownSecret`` naming every one missing."""
    if not bindings:
        return []
    names = set(bindings.values())
    rows = {
        r.secret.name: r
        for r in SecretRevision.objects.filter(
            secret__tenant=tenant,
            secret__name__in=names,
            secret__deleted_at=None,
            number=F("secret__latest_number"),
        ).select_related("secret")
    }
    missing = sorted(names - set(rows))
    if missing:
        raise UnknownSecret(
            f"secrets: this tenant has no secret named {', '.join(missing)}",
            details={"field": "secrets", "missing": missing},
        )
    key_row = TenantKey.objects.filter(tenant=tenant).first()
    if key_row is None:  # secrets without a data key: the row was removed behind the service's back
        raise VaultUnavailable()
    data_key = _data_key(key_row)
    found = {}
    for name, row in rows.items():
        aad = crypto.secret_aad(tenant_id=tenant.pk, name=name, number=row.number)
        try:
            found[name] = crypto.unseal(data_key, row.nonce, row.ciphertext, aad).decode("utf-8")
        except crypto.Undecryptable:
            extra = {"event": "vault_value_corrupt", "tenant": tenant.pk}
            log.error("secret %s failed authentication", name, extra=extra)
            raise VaultUnavailable() from None
    return [BoundSecret(env, found[name], rows[name].number, name) for env, name in bindings.items()]


def data_key_rewrap(*, tenant_id: int, keys: Mapping[str, crypto.MasterKey]) -> bool:
    """Re-wrap one tenant's data key under the current master key, reading it with whichever of
    ``keys`` (by id) wrapped it; atomic, and a no-op (False) when the current master wraps it."""
    master = crypto.current_master()
    with transaction.atomic():
        row = TenantKey.objects.select_for_update().get(tenant_id=tenant_id)
        if row.master_key_id == master.id:
            return False
        data_key = _data_key(row, keys)
        row.wrapped = crypto.wrap(master, data_key, tenant_id=tenant_id)
        row.master_key_id, row.scheme, row.rewrapped_at = master.id, crypto.SCHEME, timezone.now()
        row.save(update_fields=["wrapped", "master_key_id", "scheme", "rewrapped_at"])
    extra = {"event": "vault_rewrapped", "tenant": tenant_id}
    log.info("data key re-wrapped under master key %s", master.id, extra=extra)
    return True
