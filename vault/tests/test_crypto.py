"""The envelope: AES-GCM round trips, and the additional data that binds each ciphertext to its place."""

from __future__ import annotations

import pytest

from vault import crypto

from .support import new_master_key


def test_it_round_trips_a_value_under_a_data_key():
    key = crypto.new_data_key()
    aad = crypto.secret_aad(tenant_id=1, name="stripe", number=1)
    nonce, ciphertext = crypto.seal(key, b"sk_live_123", aad)
    assert b"sk_live_123" not in ciphertext and len(nonce) == crypto.NONCE_BYTES
    assert crypto.unseal(key, nonce, ciphertext, aad) == b"sk_live_123"


def test_each_encryption_takes_a_fresh_nonce():
    key = crypto.new_data_key()
    aad = crypto.secret_aad(tenant_id=1, name="a", number=1)
    assert crypto.seal(key, b"same", aad) != crypto.seal(key, b"same", aad)


@pytest.mark.parametrize(
    "elsewhere",
    [dict(tenant_id=2, name="stripe", number=1), dict(tenant_id=1, name="other", number=1),
     dict(tenant_id=1, name="stripe", number=2)],
)  # fmt: skip
def test_a_value_moved_to_another_tenant_name_or_revision_does_not_decrypt(elsewhere):
    key = crypto.new_data_key()
    nonce, ciphertext = crypto.seal(key, b"v", crypto.secret_aad(tenant_id=1, name="stripe", number=1))
    with pytest.raises(crypto.Undecryptable):
        crypto.unseal(key, nonce, ciphertext, crypto.secret_aad(**elsewhere))


def test_a_tampered_ciphertext_or_a_wrong_key_does_not_decrypt():
    key = crypto.new_data_key()
    aad = crypto.secret_aad(tenant_id=1, name="s", number=1)
    nonce, ciphertext = crypto.seal(key, b"value", aad)
    flipped = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(crypto.Undecryptable):
        crypto.unseal(key, nonce, flipped, aad)
    with pytest.raises(crypto.Undecryptable):
        crypto.unseal(crypto.new_data_key(), nonce, ciphertext, aad)


def test_a_data_key_is_wrapped_for_one_tenant_under_one_master():
    master, data_key = crypto.MasterKey(new_master_key()), crypto.new_data_key()
    wrapped = crypto.wrap(master, data_key, tenant_id=7)
    assert data_key not in wrapped
    assert crypto.unwrap(master, wrapped, tenant_id=7) == data_key
    with pytest.raises(crypto.Undecryptable):
        crypto.unwrap(master, wrapped, tenant_id=8)
    with pytest.raises(crypto.Undecryptable):
        crypto.unwrap(crypto.MasterKey(new_master_key()), wrapped, tenant_id=7)


def test_master_key_ids_are_stable_distinct_and_reveal_nothing_of_the_key():
    key = new_master_key()
    assert crypto.MasterKey(key).id == crypto.MasterKey(key).id
    assert crypto.MasterKey(key).id != crypto.MasterKey(new_master_key()).id
    assert len(crypto.MasterKey(key).id) == 16 and key.hex()[:16] != crypto.MasterKey(key).id
    assert key.hex() not in repr(crypto.MasterKey(key))


def test_fingerprints_depend_on_the_tenants_data_key():
    one, two = crypto.new_data_key(), crypto.new_data_key()
    assert crypto.fingerprint(one, b"v") == crypto.fingerprint(one, b"v")
    assert crypto.fingerprint(one, b"v") != crypto.fingerprint(two, b"v")
    assert crypto.fingerprint(one, b"v") != crypto.fingerprint(one, b"w")
    assert len(crypto.fingerprint(one, b"v")) == 12


def test_the_keyring_holds_the_current_and_the_old_master_keys(settings):
    old, new = new_master_key(), new_master_key()
    settings.SECRETS_KEY, settings.SECRETS_KEY_OLD = new, (old,)
    ring = crypto.keyring()
    assert set(ring) == {crypto.MasterKey(new).id, crypto.MasterKey(old).id}
    assert crypto.current_master().key == new
