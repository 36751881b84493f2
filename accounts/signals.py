"""Reactions to account changes made anywhere (forms, admin, manage.py): open websockets re-check
their access, and a deleted account's keys are revoked rather than orphaned."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import pre_delete, pre_save
from django.dispatch import receiver

from lambdasite.live import notify_user

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
