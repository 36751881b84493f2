"""Template context for every page: the signed-in person's open invitations (shown in the header)."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject


def invitations(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def mine() -> list:
        from accounts.services import invitations_for

        return invitations_for(user)

    return {"open_invitations": SimpleLazyObject(mine)}  # queried only by a page that shows it
