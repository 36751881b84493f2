"""Reactions to account changes made anywhere (forms, admin, manage.py): open websockets re-check
their access, a deleted account's keys are revoked rather than orphaned, and cached API keys are
dropped in every process."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from lambdasite.live import notify_user

from . import authcache
from .models import ApiKey, Membership, Quota, Tenant

User = get_user_model()


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        notify_user(user.id)  # the session is already flushed: its sockets find it gone


@receiver(pre_save, sender=User)
def _credentials_changed(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    """A new password (which ends the user's other sessions) or a deactivation."""
    if (
        raw
        or instance.pk is None
        or (update_fields is not None and not {"password", "is_active"} & set(update_fields))
    ):
        return
    before = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before and (before["password"] != instance.password or before["is_active"] != instance.is_active):
        user_id = instance.pk
        transaction.on_commit(lambda: notify_user(user_id))


@receiver(pre_delete, sender=User)
def _deleted(sender, instance, **kwargs) -> None:
    from .services import user_keys_revoke

    user_keys_revoke(user=instance)  # created_by becomes NULL, and a NULL creator must not mean "operator"
    user_id = instance.pk
    transaction.on_commit(lambda: notify_user(user_id))


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
@receiver(post_save, sender=Membership)
@receiver(post_delete, sender=Membership)
@receiver(post_save, sender=Tenant)
@receiver(post_delete, sender=Tenant)
@receiver(post_save, sender=Quota)
@receiver(post_delete, sender=Quota)
@receiver(post_save, sender=User)
@receiver(post_delete, sender=User)
def _keys_may_have_changed(sender, instance, raw=False, **kwargs) -> None:
    """What a key may do can have changed: cached keys are dropped in every process (accounts.authcache)."""
    if not raw:
        authcache.changed()
