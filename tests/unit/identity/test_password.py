"""Payment password: 6 digits, trivial values refused with a reason, argon2id hash and verify."""

from __future__ import annotations

from datetime import date

import pytest
from argon2 import PasswordHasher

from services.identity.password import (
    DEFAULT_LOCKOUT,
    PasswordBirthDateError,
    PasswordFormatError,
    PasswordIdNumberError,
    PasswordSameDigitError,
    PasswordSequenceError,
    PaymentPasswordError,
    check_payment_password,
)
from services.identity.password_hashing import (
    KDF_SCHEME,
    hash_payment_password,
    make_hasher,
    verify_payment_password,
)

BORN = date(1991, 1, 23)
ID_NUMBER = "360426199101230072"

# Cheap parameters keep the suite fast; make_hasher's are checked separately.
fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.mark.parametrize(
    "password", ["12345", "1234567", "12a456", "", " 13579", "\uff11\uff13\uff15\uff17\uff19\uff10"]
)
def test_anything_but_exactly_6_ascii_digits_is_refused(password: str) -> None:
    with pytest.raises(PasswordFormatError):
        check_payment_password(password, BORN)


@pytest.mark.parametrize("password", ["000000", "777777"])
def test_one_digit_repeated_is_refused(password: str) -> None:
    with pytest.raises(PasswordSameDigitError):
        check_payment_password(password, BORN)


@pytest.mark.parametrize("password", ["123456", "654321", "012345", "567890", "890123", "109876"])
def test_ascending_and_descending_runs_are_refused_also_across_9_to_0(password: str) -> None:
    with pytest.raises(PasswordSequenceError):
        check_payment_password(password, BORN)


@pytest.mark.parametrize("password", ["910123", "012391", "012300", "550123", "901235"])
def test_a_password_containing_the_birthday_mmdd_is_refused(password: str) -> None:
    with pytest.raises(PasswordBirthDateError) as caught:
        check_payment_password(password, BORN)
    assert caught.value.code == "password.birth_date"


@pytest.mark.parametrize("password", ["360426", "230072"])
def test_the_first_or_last_6_of_the_id_number_are_refused(password: str) -> None:
    with pytest.raises(PasswordIdNumberError):
        check_payment_password(password, BORN, ID_NUMBER)


@pytest.mark.parametrize("password", ["135790", "102938", "123457", "912301", "230019"])
def test_an_unremarkable_password_passes(password: str) -> None:
    check_payment_password(password, BORN, ID_NUMBER)


def test_refusals_never_echo_the_password() -> None:
    with pytest.raises(PaymentPasswordError) as caught:
        check_payment_password("910123", BORN)
    assert "910123" not in f"{caught.value} {caught.value.zh} {caught.value.en}"


def test_hash_then_verify_matches_only_the_same_password() -> None:
    encoded = hash_payment_password(fast, "135790", BORN)
    assert "135790" not in encoded
    assert verify_payment_password(fast, encoded, "135790")
    assert not verify_payment_password(fast, encoded, "135791")


def test_hashing_refuses_a_trivial_password_before_hashing() -> None:
    with pytest.raises(PasswordSequenceError):
        hash_payment_password(fast, "123456", BORN)


def test_verification_of_an_unreadable_hash_is_false_not_an_error() -> None:
    assert not verify_payment_password(fast, "not-a-hash", "135790")


def test_the_chosen_argon2id_parameters_are_in_the_hash_and_the_scheme_label() -> None:
    encoded = make_hasher().hash("135790")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert KDF_SCHEME == "argon2id-m19456-t2-p1"


def test_lockout_defaults_to_5_failures() -> None:
    assert DEFAULT_LOCKOUT.max_failures == 5
