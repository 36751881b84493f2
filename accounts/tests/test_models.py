"""Rules that live on accounts' models and principals: the egress quota and monthly egress budget, who
acts as an owner."""

from __future__ import annotations

import pytest

from accounts.authentication import ApiPrincipal
from accounts.models import ApiKey, Quota
from lambdasite.exceptions import Forbidden

ORDER = ["none", "allowlist", "public"]
EXAMPLES = {"none": "none", "allowlist": ["api.example.com:443"], "public": "public"}


@pytest.mark.parametrize("cap", ORDER)
@pytest.mark.parametrize("asked", ORDER)
def test_check_egress_allows_up_to_max_egress_and_refuses_beyond_it(cap, asked):
    quota = Quota(max_egress=cap)
    if ORDER.index(asked) <= ORDER.index(cap):
        quota.check_egress(EXAMPLES[asked])
        return
    with pytest.raises(Forbidden) as refused:
        quota.check_egress(EXAMPLES[asked])
    error = refused.value
    assert error.code == "egress_not_allowed" and error.status == 403
    assert error.details == {"field": "egress", "quota": "max_egress", "limit": cap, "requested": asked}
    assert f"{asked} is beyond this tenant's max_egress of {cap}" in error.message


def test_the_default_quota_allows_allowlists_and_not_public():
    assert Quota().max_egress == "allowlist" and Quota().max_secrets == 100


def test_egress_bytes_left_is_the_monthly_budget_less_what_was_used_and_none_when_unlimited():
    assert Quota().max_egress_bytes_month == 10 << 30
    quota = Quota(max_egress_bytes_month=1000)
    assert [quota.egress_bytes_left(used) for used in (0, 400, 1000, 5000, -3)] == [1000, 600, 0, 0, 1000]
    assert Quota(max_egress_bytes_month=None).egress_bytes_left(1 << 50) is None


@pytest.mark.parametrize(
    "kind, scope, role, owner",
    [
        ("operator", "write", None, True),
        ("operator", "read", None, False),
        ("user", "write", "owner", True),
        ("user", "read", "owner", False),
        ("user", "write", "member", False),
        ("user", "write", "viewer", False),
    ],
)
def test_a_key_acts_as_an_owner_only_when_it_writes_for_an_owner_or_the_tenant(kind, scope, role, owner):
    key = ApiKey(kind=kind, scope=scope)
    key.creator_role = role
    assert ApiPrincipal(key).is_owner is owner
