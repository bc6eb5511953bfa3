"""Payment password: the 6-digit rule, trivial values refused, lockout as data (no hashing).

The argon2id hash is `password_hashing`: this module stays pure, so the domain can use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import ClassVar

from services.identity.errors import IdentityError

_SIX_DIGITS = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class LockoutPolicy:
    """`max_failures` consecutive wrong passwords lock password use for `lock_for`.

    Three hours is what the mainstream payment apps apply; face verification stays usable.
    """

    max_failures: int = 5
    lock_for: timedelta = timedelta(hours=3)


DEFAULT_LOCKOUT = LockoutPolicy()


class PaymentPasswordError(IdentityError):
    code: ClassVar[str] = "password.invalid"
    field: ClassVar[str | None] = "password"


class PasswordFormatError(PaymentPasswordError):
    code: ClassVar[str] = "password.format"
    message_zh: ClassVar[str] = "支付密码应为6位数字"
    message_en: ClassVar[str] = "The payment password must be exactly 6 digits"


class PasswordSameDigitError(PaymentPasswordError):
    code: ClassVar[str] = "password.same_digit"
    message_zh: ClassVar[str] = "支付密码不能是同一个数字重复"
    message_en: ClassVar[str] = "The payment password must not repeat one digit"


class PasswordSequenceError(PaymentPasswordError):
    code: ClassVar[str] = "password.sequence"
    message_zh: ClassVar[str] = "支付密码不能是连续数字（如123456、654321）"
    message_en: ClassVar[str] = "The payment password must not be a run such as 123456 or 654321"


class PasswordBirthDateError(PaymentPasswordError):
    code: ClassVar[str] = "password.birth_date"
    message_zh: ClassVar[str] = "支付密码不能包含本人生日"
    message_en: ClassVar[str] = "The payment password must not contain your birthday"


class PasswordIdNumberError(PaymentPasswordError):
    code: ClassVar[str] = "password.id_number"
    message_zh: ClassVar[str] = "支付密码不能是身份证号码的前6位或后6位"
    message_en: ClassVar[str] = "The payment password must not be the first or last 6 of your ID"


def check_payment_password(password: str, birth_date: date, id_number: str | None = None) -> None:
    """Raise the PaymentPasswordError that says why `password` is refused, if it is.

    Refused, in this order:
    - anything but exactly 6 ASCII digits;
    - one digit six times (000000, 888888);
    - a run: each digit one more, or each one less, than the one before, wrapping 9 -> 0
      (123456, 654321, 567890, 890123, 109876);
    - the birthday: the password contains the birth date's MMDD anywhere, which covers
      YYMMDD, MMDDYY and any MMDD padded with two digits (the brief's "MMDD/YYMMDD");
    - the first or the last 6 characters of the ID number (both printed on the card).
    """
    if not _SIX_DIGITS.fullmatch(password):
        raise PasswordFormatError
    if len(set(password)) == 1:
        raise PasswordSameDigitError
    steps = {(int(b) - int(a)) % 10 for a, b in pairwise(password)}
    if steps in ({1}, {9}):
        raise PasswordSequenceError
    if f"{birth_date:%m%d}" in password:
        raise PasswordBirthDateError
    if id_number is not None and password in (id_number[:6], id_number[-6:]):
        raise PasswordIdNumberError
