"""The master key's configuration: from the environment, a file, or a file the set-up writes; never
missing in production."""

from __future__ import annotations

import base64
import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from lambdasite.env import secrets_keys

from .support import b64, new_master_key


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("SECRETS_KEY", "SECRETS_KEY_FILE", "SECRETS_KEY_OLD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_it_reads_the_key_from_the_environment(clean_env, tmp_path):
    key = new_master_key()
    clean_env.setenv("SECRETS_KEY", b64(key))
    assert secrets_keys(tmp_path / "secrets_key", debug=False) == (key, ())


def test_it_reads_the_key_from_the_file_named(clean_env, tmp_path):
    key = new_master_key()
    (tmp_path / "k").write_text(base64.urlsafe_b64encode(key).decode() + "\n")
    clean_env.setenv("SECRETS_KEY_FILE", str(tmp_path / "k"))
    assert secrets_keys(tmp_path / "secrets_key", debug=False)[0] == key


def test_production_without_a_key_refuses_to_start(clean_env, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="SECRETS_KEY is unset"):
        secrets_keys(tmp_path / "secrets_key", debug=False)
    assert not (tmp_path / "secrets_key").exists()


def test_debug_writes_a_random_key_file_once_and_keeps_it(clean_env, tmp_path):
    path = tmp_path / "var" / "secrets_key"
    first = secrets_keys(path, debug=True)[0]
    assert len(first) == 32 and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert secrets_keys(path, debug=True)[0] == first
    assert secrets_keys(path, debug=False)[0] == first  # a written file serves production too
    assert [p.name for p in path.parent.iterdir()] == ["secrets_key"]  # no temporary left behind


@pytest.mark.parametrize("bad", ["short", b64(b"x" * 16), "not base64!!", b64(b"x" * 33)])
def test_a_key_that_is_not_32_bytes_of_base64_is_refused(clean_env, tmp_path, bad):
    clean_env.setenv("SECRETS_KEY", bad)
    with pytest.raises(ImproperlyConfigured, match="base64 of 32 random bytes"):
        secrets_keys(tmp_path / "secrets_key", debug=True)


def test_old_keys_are_listed_apart_from_the_current_one(clean_env, tmp_path):
    key, old = new_master_key(), new_master_key()
    clean_env.setenv("SECRETS_KEY", b64(key))
    clean_env.setenv("SECRETS_KEY_OLD", f"{b64(old)}, {b64(key)}")
    assert secrets_keys(tmp_path / "k", debug=False) == (key, (old,))


def test_an_unreadable_key_file_is_a_configuration_error(clean_env, tmp_path):
    clean_env.setenv("SECRETS_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="SECRETS_KEY_FILE"):
        secrets_keys(tmp_path / "secrets_key", debug=True)


def test_the_master_key_of_this_installation_is_private_and_32_bytes():
    """Written by scripts/setup.sh (or by the suite's settings when missing), never world-readable."""
    from django.conf import settings

    path = settings.BASE_DIR / "var" / "secrets_key"
    if path.exists():
        assert path.stat().st_mode & 0o077 == 0
        assert len(base64.b64decode(path.read_text().strip())) == 32
    assert len(settings.SECRETS_KEY) == 32
