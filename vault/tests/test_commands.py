"""manage.py secrets_rotate_master: every data key re-wrapped under the new master, idempotently."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from vault import crypto
from vault.models import TenantKey
from vault.services import secret_put, secret_values

from .support import OWNER, b64, new_master_key

pytestmark = pytest.mark.django_db


def rotate(*args) -> str:
    out = StringIO()
    call_command("secrets_rotate_master", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def two_tenants_under_old_key(alice, bob, settings):
    old = new_master_key()
    settings.SECRETS_KEY, settings.SECRETS_KEY_OLD = old, ()
    secret_put(tenant=alice.tenant, name="s", value="alice's", actor=OWNER)
    secret_put(tenant=bob.tenant, name="s", value="bob's", actor=OWNER)
    return old


def values(*personas) -> list[str]:
    return [secret_values(tenant=p.tenant, bindings={"S": "s"})[0].value for p in personas]


def test_it_rewraps_every_data_key_and_the_old_key_can_then_go(two_tenants_under_old_key, alice, bob,
                                                               settings):  # fmt: skip
    old, new = two_tenants_under_old_key, new_master_key()
    before = {row.tenant_id: bytes(row.wrapped) for row in TenantKey.objects.all()}
    settings.SECRETS_KEY, settings.SECRETS_KEY_OLD = new, (old,)
    assert values(alice, bob) == ["alice's", "bob's"]  # both keys read during the rotation
    assert "re-wrapped 2 data keys" in rotate()
    for row in TenantKey.objects.all():
        assert row.master_key_id == crypto.MasterKey(new).id and bytes(row.wrapped) != before[row.tenant_id]
        assert row.rewrapped_at is not None
    settings.SECRETS_KEY_OLD = ()
    assert values(alice, bob) == ["alice's", "bob's"]
    assert "re-wrapped 0 data keys" in rotate() and "2 already were" in rotate()  # idempotent
    assert "all 2 data keys are under the current master" in rotate("--check")


def test_the_old_key_may_be_given_in_a_file(two_tenants_under_old_key, alice, bob, settings, tmp_path):
    settings.SECRETS_KEY = new_master_key()
    with pytest.raises(CommandError, match="not under the current master"):
        rotate("--check")
    with pytest.raises(CommandError, match="2 data keys could not be read"):
        rotate()
    assert TenantKey.objects.filter(master_key_id=crypto.current_master().id).count() == 0
    (tmp_path / "old").write_text(b64(two_tenants_under_old_key) + "\n")
    assert "re-wrapped 2 data keys" in rotate("--old-key-file", str(tmp_path / "old"))
    assert values(alice, bob) == ["alice's", "bob's"]


def test_each_tenant_is_rewrapped_on_its_own(two_tenants_under_old_key, alice, bob, settings):
    """A tenant whose key cannot be read is reported; the others are done."""
    old, new = two_tenants_under_old_key, new_master_key()
    TenantKey.objects.filter(tenant=bob.tenant).update(master_key_id="0" * 16)
    settings.SECRETS_KEY, settings.SECRETS_KEY_OLD = new, (old,)
    with pytest.raises(CommandError, match=f"1 data keys could not be read.*tenants {bob.tenant.pk}"):
        rotate()
    assert TenantKey.objects.get(tenant=alice.tenant).master_key_id == crypto.MasterKey(new).id
    assert TenantKey.objects.get(tenant=bob.tenant).master_key_id == "0" * 16
    assert values(alice) == ["alice's"]


def test_a_bad_old_key_file_is_a_clean_error(two_tenants_under_old_key, settings, tmp_path):
    (tmp_path / "old").write_text("not-a-key\n")
    with pytest.raises(CommandError, match="base64 of 32 random bytes"):
        rotate("--old-key-file", str(tmp_path / "old"))
    with pytest.raises(CommandError, match="missing"):
        rotate("--old-key-file", str(tmp_path / "missing"))
