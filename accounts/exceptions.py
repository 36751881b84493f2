"""Errors of tenants, members, invitations and keys (see lambdasite/exceptions.py for the base)."""

from __future__ import annotations

from lambdasite.exceptions import Conflict, Forbidden


class TenantExists(Conflict):
    code = "tenant_exists"


class LastOwner(Conflict):
    code = "last_owner"
    default_message = "a tenant keeps at least one owner: make someone else owner first"


class AlreadyMember(Conflict):
    code = "already_member"


class AccountExists(Conflict):
    code = "account_exists"
    default_message = "an account with this email exists: sign in to accept the invitation"


class TenantSuspended(Forbidden):
    code = "tenant_suspended"
    default_message = "this tenant is suspended"


class ReadOnlyKey(Forbidden):
    code = "read_only_key"
    default_message = "this API key is read-only (read scope, or its creator is a viewer)"
