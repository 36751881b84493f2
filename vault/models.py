"""A tenant's data key (stored wrapped by the master key), its secrets and their revisions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import Tenant

# Case-sensitive; a letter or "_" first, then letters, digits, "_" or "-"; 1 to 64 characters: safe
# in a URL, a shell and a file name, and never read as a command-line option.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"


class TenantKey(models.Model):
    """The tenant's 256-bit data key, wrapped (AES-GCM) under the master key ``master_key_id``
    names. Made on the tenant's first secret; re-wrapped, never changed, by a master rotation."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="vault_key")
    wrapped = models.BinaryField()  # nonce + ciphertext + tag
    master_key_id = models.CharField(max_length=16)
    scheme = models.PositiveSmallIntegerField(default=1)  # vault.crypto.SCHEME
    created_at = models.DateTimeField(auto_now_add=True)
    rewrapped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"data key of {self.tenant_id} (master {self.master_key_id})"


class Secret(models.Model):
    """A named secret of a tenant. Deleting one keeps the row (its value erased, ``deleted_at``
    set) so that setting the name again continues its revision numbers: a revision number never
    names two values."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=64)
    latest_number = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()  # of the current value's first revision since any deletion
    updated_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="one_secret_name_per_tenant"),
            models.CheckConstraint(condition=Q(name__regex=NAME_PATTERN), name="secret_name_format"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.name}"


class SecretRevision(models.Model):
    """One value a secret held. Only the current revision keeps its ciphertext: a rotation or a
    deletion erases the earlier value, and its number, fingerprint, time and author remain."""

    secret = models.ForeignKey(Secret, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    nonce = models.BinaryField(blank=True)
    ciphertext = models.BinaryField(blank=True)  # empty once superseded or deleted
    fingerprint = models.CharField(max_length=12)
    size_bytes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=200)  # who, as shown: a user's email or a key's name

    class Meta:
        ordering = ["secret", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["secret", "number"], name="one_secret_revision_per_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="secret_revision_from_one"),
        ]

    def __str__(self) -> str:
        return f"{self.secret} r{self.number}"
