"""The secrets store against PostgreSQL: set, rotate, delete, read for a run, and what is stored."""

from __future__ import annotations

import pytest

from lambdasite.exceptions import PayloadTooLarge, ValidationFailed
from vault import crypto, selectors
from vault.exceptions import OwnersOnly, SecretLimit, SecretNotFound, UnknownSecret, VaultUnavailable
from vault.models import Secret, SecretRevision, TenantKey
from vault.services import Actor, BoundSecret, secret_delete, secret_put, secret_values

from .support import MEMBER, OWNER, new_master_key

pytestmark = pytest.mark.django_db


def test_it_stores_a_value_encrypted_and_gives_it_back_for_a_run(alice):
    revision = secret_put(tenant=alice.tenant, name="stripe", value="sk_live_42", actor=OWNER)
    assert revision.number == 1 and revision.created and len(revision.fingerprint) == 12
    stored = SecretRevision.objects.get(pk=revision.pk)
    assert b"sk_live_42" not in bytes(stored.ciphertext) and stored.size_bytes == 10
    assert b"sk_live_42" not in bytes(TenantKey.objects.get(tenant=alice.tenant).wrapped)
    assert secret_values(tenant=alice.tenant, bindings={"STRIPE_KEY": "stripe"}) == [
        BoundSecret("STRIPE_KEY", "sk_live_42", 1, "stripe")
    ]


def test_a_rotation_is_a_new_revision_and_erases_the_old_value(alice):
    first = secret_put(tenant=alice.tenant, name="db", value="one", actor=OWNER)
    second = secret_put(tenant=alice.tenant, name="db", value="two", actor=Actor("k", is_owner=True))
    assert (second.number, second.created) == (2, False) and second.fingerprint != first.fingerprint
    old = SecretRevision.objects.get(pk=first.pk)
    assert bytes(old.ciphertext) == b"" and old.fingerprint == first.fingerprint  # metadata stays
    assert secret_values(tenant=alice.tenant, bindings={"DB": "db"})[0].value == "two"
    listed = selectors.secret_get(tenant=alice.tenant, name="db")
    assert (listed.latest_number, listed.fingerprint, listed.updated_by) == (2, second.fingerprint, "k")


def test_the_same_value_has_another_fingerprint_in_another_tenant(alice, bob):
    mine = secret_put(tenant=alice.tenant, name="s", value="same", actor=OWNER)
    theirs = secret_put(tenant=bob.tenant, name="s", value="same", actor=OWNER)
    assert mine.fingerprint != theirs.fingerprint
    again = secret_put(tenant=alice.tenant, name="s", value="same", actor=OWNER)
    assert again.fingerprint == mine.fingerprint


def test_only_owners_change_secrets(alice):
    with pytest.raises(OwnersOnly):
        secret_put(tenant=alice.tenant, name="s", value="v", actor=MEMBER)
    secret_put(tenant=alice.tenant, name="s", value="v", actor=OWNER)
    with pytest.raises(OwnersOnly):
        secret_delete(tenant=alice.tenant, name="s", actor=MEMBER)


@pytest.mark.parametrize("name", ["", "1abc", "has space", "a/b", "a.b", "x" * 65, "é", "-dash", None, 5])
def test_bad_names_are_refused(alice, name):
    with pytest.raises(ValidationFailed) as refused:
        secret_put(tenant=alice.tenant, name=name, value="v", actor=OWNER)
    assert refused.value.details["fields"].keys() == {"name"}


@pytest.mark.parametrize("name", ["a", "_x", "STRIPE_KEY", "stripe-live", "A" * 64, "Mixed_Case-9"])
def test_good_names_are_kept_as_given(alice, name):
    secret_put(tenant=alice.tenant, name=name, value="v", actor=OWNER)
    assert Secret.objects.get(tenant=alice.tenant).name == name


def test_names_are_case_sensitive(alice):
    secret_put(tenant=alice.tenant, name="token", value="a", actor=OWNER)
    secret_put(tenant=alice.tenant, name="TOKEN", value="b", actor=OWNER)
    assert [v.value for v in secret_values(tenant=alice.tenant, bindings={"A": "token", "B": "TOKEN"})] == [
        "a",
        "b",
    ]


@pytest.mark.parametrize("value", ["", "a\x00b", 42, None, "\ud800"])
def test_bad_values_are_refused_without_repeating_them(alice, value):
    with pytest.raises(ValidationFailed) as refused:
        secret_put(tenant=alice.tenant, name="s", value=value, actor=OWNER)
    assert refused.value.details["fields"].keys() == {"value"}
    assert not Secret.objects.exists()


def test_a_value_over_64_kb_is_a_413_and_64_kb_fits(alice):
    secret_put(tenant=alice.tenant, name="big", value="é" * (32 * 1024), actor=OWNER)
    with pytest.raises(PayloadTooLarge) as refused:
        secret_put(tenant=alice.tenant, name="big", value="x" * (64 * 1024 + 1), actor=OWNER)
    assert "xxxx" not in refused.value.message and refused.value.details["limit"] == 65536


def test_a_deleted_secret_is_gone_and_setting_it_again_continues_its_numbers(alice):
    secret_put(tenant=alice.tenant, name="s", value="one", actor=OWNER)
    secret_put(tenant=alice.tenant, name="s", value="two", actor=OWNER)
    secret_delete(tenant=alice.tenant, name="s", actor=OWNER)
    assert not SecretRevision.objects.exclude(ciphertext=b"").exists()
    assert selectors.secret_get(tenant=alice.tenant, name="s") is None
    assert list(selectors.secret_list(tenant=alice.tenant)) == []
    with pytest.raises(UnknownSecret):
        secret_values(tenant=alice.tenant, bindings={"S": "s"})
    with pytest.raises(SecretNotFound):
        secret_delete(tenant=alice.tenant, name="s", actor=OWNER)
    again = secret_put(tenant=alice.tenant, name="s", value="three", actor=OWNER)
    assert (again.number, again.created) == (3, True)  # never a second value under revision 1 or 2
    assert secret_values(tenant=alice.tenant, bindings={"S": "s"})[0] == BoundSecret("S", "three", 3, "s")


def test_a_binding_to_a_missing_secret_names_every_one_missing(alice, bob):
    secret_put(tenant=alice.tenant, name="here", value="v", actor=OWNER)
    secret_put(tenant=bob.tenant, name="theirs", value="v", actor=OWNER)
    with pytest.raises(UnknownSecret) as refused:
        secret_values(tenant=alice.tenant, bindings={"A": "here", "B": "theirs", "C": "nowhere"})
    assert refused.value.details["missing"] == ["nowhere", "theirs"]  # another tenant's is not there
    assert "v" not in refused.value.message.split()


def test_a_value_copied_into_another_tenants_row_does_not_decrypt(alice, bob):
    secret_put(tenant=alice.tenant, name="s", value="alice's", actor=OWNER)
    secret_put(tenant=bob.tenant, name="s", value="bob's", actor=OWNER)
    mine = SecretRevision.objects.get(secret__tenant=alice.tenant)
    SecretRevision.objects.filter(secret__tenant=bob.tenant).update(
        nonce=mine.nonce, ciphertext=mine.ciphertext
    )
    with pytest.raises(VaultUnavailable):
        secret_values(tenant=bob.tenant, bindings={"S": "s"})
    # even with alice's data key copied over too
    TenantKey.objects.filter(tenant=bob.tenant).update(
        wrapped=TenantKey.objects.get(tenant=alice.tenant).wrapped
    )
    with pytest.raises(VaultUnavailable):
        secret_values(tenant=bob.tenant, bindings={"S": "s"})


def test_without_the_master_key_nothing_decrypts(alice, settings):
    secret_put(tenant=alice.tenant, name="s", value="v", actor=OWNER)
    settings.SECRETS_KEY = new_master_key()
    with pytest.raises(VaultUnavailable):
        secret_values(tenant=alice.tenant, bindings={"S": "s"})


def test_secrets_are_capped_per_tenant(alice):
    alice.tenant.quota.max_secrets = 2
    alice.tenant.quota.save()
    secret_put(tenant=alice.tenant, name="a", value="v", actor=OWNER)
    secret_put(tenant=alice.tenant, name="b", value="v", actor=OWNER)
    secret_put(tenant=alice.tenant, name="b", value="rotated", actor=OWNER)  # a rotation is not a new one
    with pytest.raises(SecretLimit):
        secret_put(tenant=alice.tenant, name="c", value="v", actor=OWNER)
    secret_delete(tenant=alice.tenant, name="a", actor=OWNER)
    secret_put(tenant=alice.tenant, name="c", value="v", actor=OWNER)


def test_a_suspended_tenant_changes_no_secret(alice):
    from accounts.exceptions import TenantSuspended

    alice.tenant.is_suspended = True
    alice.tenant.save()
    with pytest.raises(TenantSuspended):
        secret_put(tenant=alice.tenant, name="s", value="v", actor=OWNER)


def test_one_data_key_per_tenant_made_on_the_first_secret(alice):
    assert not TenantKey.objects.exists()
    secret_put(tenant=alice.tenant, name="a", value="v", actor=OWNER)
    secret_put(tenant=alice.tenant, name="b", value="v", actor=OWNER)
    row = TenantKey.objects.get()
    assert row.master_key_id == crypto.current_master().id


def test_no_value_is_logged(alice, caplog):
    caplog.set_level("DEBUG")
    secret_put(tenant=alice.tenant, name="s", value="hunter2-secret", actor=OWNER)
    secret_values(tenant=alice.tenant, bindings={"S": "s"})
    secret_delete(tenant=alice.tenant, name="s", actor=OWNER)
    from lambdasite.logs import JsonFormatter

    lines = "\n".join(JsonFormatter().format(r) + repr(r.__dict__) for r in caplog.records)
    assert "hunter2-secret" not in lines and '"event": "secret_set"' in lines
    assert "secret s set: revision 1, by owner@test" in lines
