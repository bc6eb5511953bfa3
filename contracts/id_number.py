"""Resident ID numbers (GB 11643-1999): validation on top of stdnum.cn.ric, derived facts.

Published language: identity registers persons by them, binding finds members by them, review
searches its queue by them; each parses, normalises and masks them the same way.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import ClassVar

from stdnum import exceptions as stdnum_errors
from stdnum import numdb
from stdnum.cn import ric

from contracts.errors import DomainError

ID_NUMBER_LENGTH = 18
# Province-level codes of GB/T 2260 (71 Taiwan, 81 Hong Kong, 82 Macao included).
PROVINCE_CODES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36",
        "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62",
        "63", "64", "65", "71", "81", "82",
    }
)  # fmt: skip
# ISO 7064 MOD 11-2 weights of the 17 body digits (2^(17-i) mod 11) and the check characters.
CHECK_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"  # indexed by (weighted sum mod 11)
# Nobody alive was born earlier; an older date is a typo, whatever the calendar allows.
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class IdNumberError(DomainError):
    code: ClassVar[str] = "id_number.invalid"
    field: ClassVar[str | None] = "id_number"


class IdNumberLengthError(IdNumberError):
    code: ClassVar[str] = "id_number.length"
    message_zh: ClassVar[str] = "身份证号码应为18位（15位旧号码请使用18位新号码）"
    message_en: ClassVar[str] = (
        "The ID number must have 18 characters (use the 18-digit form of a 15-digit old number)"
    )


class IdNumberFormatError(IdNumberError):
    code: ClassVar[str] = "id_number.format"
    message_zh: ClassVar[str] = "身份证号码格式错误：前17位应为数字，最后一位为数字或X"
    message_en: ClassVar[str] = "The ID number must be 17 digits followed by a digit or X"


class IdNumberRegionError(IdNumberError):
    code: ClassVar[str] = "id_number.region"
    message_zh: ClassVar[str] = "身份证号码的地区码无效"
    message_en: ClassVar[str] = "The region code of the ID number is not valid"


class IdNumberBirthDateError(IdNumberError):
    code: ClassVar[str] = "id_number.birth_date"
    message_zh: ClassVar[str] = "身份证号码中的出生日期无效或晚于今天"
    message_en: ClassVar[str] = "The birth date in the ID number does not exist or is in the future"


class IdNumberCheckDigitError(IdNumberError):
    code: ClassVar[str] = "id_number.check_digit"
    message_zh: ClassVar[str] = "身份证号码校验码错误，请核对是否输错"
    message_en: ClassVar[str] = "The check character of the ID number is wrong; look for a typo"


@dataclass(frozen=True)
class IdNumber:
    """A valid resident ID number (upper-case `X`) and what it tells."""

    value: str
    birth_date: date
    sex: Sex
    region: str

    def masked(self) -> str:
        return mask_id_number(self.value)

    def __repr__(self) -> str:  # keep the full number out of logs and tracebacks
        return f"IdNumber({self.masked()!r})"

    __str__ = __repr__


def mask_id_number(number: str) -> str:
    """First 3 and last 4 characters shown, the rest starred; short input is starred whole."""
    if len(number) < ID_NUMBER_LENGTH:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def check_char(body: str) -> str:
    """The ISO 7064 MOD 11-2 check character of a 17-digit body."""
    total = sum(int(d) * w for d, w in zip(body, CHECK_WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def normalise(raw: str) -> str:
    """NFKC turns the full-width digits of Chinese input methods into ASCII ones."""
    return unicodedata.normalize("NFKC", raw).strip().upper()


def parse_id_number(raw: str, today: date) -> IdNumber:
    """Validate `raw` as on `today` (the caller's day in China) or raise an IdNumberError.

    Order: length, format, province, check character, birth date, county (whether a county
    code existed depends on the birth year, so the county comes last).
    """
    number = normalise(raw)
    if len(number) != ID_NUMBER_LENGTH:
        raise IdNumberLengthError
    if not _SHAPE.fullmatch(number):
        raise IdNumberFormatError
    if number[:2] not in PROVINCE_CODES:
        raise IdNumberRegionError
    try:
        ric.validate(number)
    except stdnum_errors.InvalidChecksum:
        raise IdNumberCheckDigitError from None
    except stdnum_errors.InvalidLength:  # unreachable after our own checks; mapped for safety
        raise IdNumberLengthError from None
    except stdnum_errors.InvalidFormat:
        raise IdNumberFormatError from None
    except (stdnum_errors.InvalidComponent, KeyError):
        # stdnum raises the same error for a nonexistent date and an unknown county, and a
        # KeyError for a known province with an unknown county (python-stdnum 2.2).
        _birth_date(number)
        raise IdNumberRegionError from None
    birth = _birth_date(number)
    if birth < EARLIEST_BIRTH_DATE:
        raise IdNumberBirthDateError("（早于1900年）", " (it is before 1900)")
    if birth > today:
        # The date itself stays out of the message: it is part of the ID number.
        raise IdNumberBirthDateError("（晚于今天）", " (it is after today)")
    sex = Sex.MALE if int(number[14:17]) % 2 else Sex.FEMALE
    return IdNumber(value=number, birth_date=birth, sex=sex, region=number[:6])


def _birth_date(number: str) -> date:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdNumberBirthDateError from None


def is_known_region(code: str) -> bool:
    """A 6-digit administrative division code that stdnum's database knows (any year)."""
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return False
    if code[:2] not in PROVINCE_CODES:
        return False
    found = {k for _, props in numdb.get("cn/loc").info(code) for k in props}
    return "county" in found
