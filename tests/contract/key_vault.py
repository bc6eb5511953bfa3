"""The key-vault contract: run against the in-memory and the PostgreSQL vault alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.runtime.pii import (
    ERASED,
    KeyVault,
    PersonErasedError,
    TamperedCiphertextError,
    UnknownPersonKeyError,
    new_pseudonym,
)

NAME = "张三"
ID_NUMBER = "11010519491231002X"


class KeyVaultContract:
    """Subclasses provide a `vault` fixture giving an empty vault."""

    async def test_a_field_encrypted_for_a_person_decrypts_for_them(self, vault: KeyVault) -> None:
        person = new_pseudonym()
        await vault.create_key(person)
        token = await vault.encrypt(person, NAME, context="name")
        assert token.startswith("v1.")
        assert NAME not in token
        assert await vault.decrypt(person, token, context="name") == NAME

    async def test_the_same_value_encrypts_differently_each_time(self, vault: KeyVault) -> None:
        person = new_pseudonym()
        await vault.create_key(person)
        first = await vault.encrypt(person, ID_NUMBER, context="id_number")
        second = await vault.encrypt(person, ID_NUMBER, context="id_number")
        assert first != second

    async def test_creating_a_key_again_keeps_the_first(self, vault: KeyVault) -> None:
        person = new_pseudonym()
        await vault.create_key(person)
        token = await vault.encrypt(person, NAME, context="name")
        await vault.create_key(person)
        assert await vault.decrypt(person, token, context="name") == NAME

    async def test_a_token_moved_to_another_person_does_not_decrypt(self, vault: KeyVault) -> None:
        alice, bob = new_pseudonym(), new_pseudonym()
        await vault.create_key(alice)
        await vault.create_key(bob)
        token = await vault.encrypt(alice, NAME, context="name")
        with pytest.raises(TamperedCiphertextError):
            await vault.decrypt(bob, token, context="name")

    async def test_a_token_moved_to_another_field_does_not_decrypt(self, vault: KeyVault) -> None:
        person = new_pseudonym()
        await vault.create_key(person)
        token = await vault.encrypt(person, ID_NUMBER, context="id_number")
        with pytest.raises(TamperedCiphertextError):
            await vault.decrypt(person, token, context="name")

    @pytest.mark.parametrize(
        "tamper",
        [
            pytest.param(lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1], id="bit"),
            pytest.param(lambda t: t[:-6], id="truncated"),
            pytest.param(lambda t: "v2" + t[2:], id="version"),
            pytest.param(lambda t: t.replace(".", "", 1), id="no-nonce"),
            pytest.param(lambda t: t + "!", id="not-base64"),
            pytest.param(lambda _: "", id="empty"),
        ],
    )
    async def test_an_altered_token_raises_a_typed_error(
        self, vault: KeyVault, tamper: Callable[[str], str]
    ) -> None:
        person = new_pseudonym()
        await vault.create_key(person)
        token = await vault.encrypt(person, NAME, context="name")
        with pytest.raises(TamperedCiphertextError) as caught:
            await vault.decrypt(person, tamper(token), context="name")
        assert NAME not in str(caught.value)

    async def test_after_erasure_every_token_reads_as_erased(self, vault: KeyVault) -> None:
        person, other = new_pseudonym(), new_pseudonym()
        await vault.create_key(person)
        await vault.create_key(other)
        name = await vault.encrypt(person, NAME, context="name")
        id_number = await vault.encrypt(person, ID_NUMBER, context="id_number")
        kept = await vault.encrypt(other, NAME, context="name")
        assert await vault.erased_at(person) is None

        assert await vault.erase(person) is True

        assert await vault.decrypt(person, name, context="name") is ERASED
        assert await vault.decrypt(person, id_number, context="id_number") is ERASED
        assert await vault.decrypt(other, kept, context="name") == NAME
        assert await vault.erased_at(person) is not None
        assert await vault.erased_at(other) is None

    async def test_erasing_again_deletes_nothing_and_keeps_the_first_time(
        self, vault: KeyVault
    ) -> None:
        person = new_pseudonym()
        await vault.create_key(person)
        assert await vault.erase(person) is True
        first = await vault.erased_at(person)
        assert await vault.erase(person) is False
        assert await vault.erased_at(person) == first

    async def test_an_erased_person_gets_no_new_key_and_no_new_ciphertext(
        self, vault: KeyVault
    ) -> None:
        person = new_pseudonym()
        await vault.create_key(person)
        await vault.erase(person)
        with pytest.raises(PersonErasedError):
            await vault.create_key(person)
        with pytest.raises(PersonErasedError):
            await vault.encrypt(person, NAME, context="name")

    async def test_a_person_without_a_key_is_an_error_not_an_erasure(self, vault: KeyVault) -> None:
        person = new_pseudonym()
        with pytest.raises(UnknownPersonKeyError):
            await vault.encrypt(person, NAME, context="name")
        with pytest.raises(UnknownPersonKeyError):
            await vault.decrypt(person, "v1.AAAA.AAAA", context="name")

    async def test_erasing_a_person_who_never_had_a_key_still_records_it(
        self, vault: KeyVault
    ) -> None:
        person = new_pseudonym()
        assert await vault.erase(person) is False
        assert await vault.erased_at(person) is not None
        assert await vault.decrypt(person, "v1.AAAA.AAAA", context="name") is ERASED
