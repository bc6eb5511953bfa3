"""Pseudonyms, lookup hashes, key settings, and the key-vault contract held by the fake."""

from __future__ import annotations

import base64
import re

import pytest
from pydantic import SecretStr

from services.runtime.pii import (
    InMemoryKeyVault,
    lookup_hash,
    lookup_key,
    master_key,
    new_pseudonym,
)
from services.runtime.settings import Settings
from tests.contract.key_vault import KeyVaultContract


class TestInMemoryKeyVault(KeyVaultContract):
    @pytest.fixture
    def vault(self) -> InMemoryKeyVault:
        return InMemoryKeyVault()


def test_pseudonyms_are_url_safe_random_and_distinct() -> None:
    made = {new_pseudonym() for _ in range(1000)}
    assert len(made) == 1000
    assert all(re.fullmatch(r"p_[A-Za-z0-9_-]{22}", p) for p in made)


def test_lookup_hash_is_stable_per_key_and_hides_the_value() -> None:
    key, other = b"k" * 32, b"o" * 32
    digest = lookup_hash(key, "11010519491231002X")
    assert digest == lookup_hash(key, "11010519491231002X")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest != lookup_hash(other, "11010519491231002X")
    assert digest != lookup_hash(key, "110105194912310029")
    assert "1101051949" not in digest


def test_key_settings_decode_to_32_bytes() -> None:
    settings = Settings(master_key=SecretStr(base64.b64encode(b"m" * 32).decode()))
    assert master_key(settings) == b"m" * 32
    assert len(lookup_key(Settings())) == 32


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_master_key_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="QINQING_MASTER_KEY"):
        master_key(Settings(master_key=SecretStr(value)))
