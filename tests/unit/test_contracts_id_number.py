"""Resident ID numbers: each GB 11643-1999 rule, its error code, and the check character."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from contracts.id_number import (
    IdNumberBirthDateError,
    IdNumberCheckDigitError,
    IdNumberError,
    IdNumberFormatError,
    IdNumberLengthError,
    IdNumberRegionError,
    Sex,
    is_known_region,
    mask_id_number,
    parse_id_number,
)

TODAY = date(2026, 11, 25)


def mod_11_2(body: str) -> str:
    """ISO 7064 MOD 11-2 by its definition: the check value c (X = 10) makes
    sum(a_i * 2^(i-1) for i = 18..2) + c == 1 (mod 11), a_i counted from the right."""
    weighted = sum(int(digit) * pow(2, 17 - i, 11) for i, digit in enumerate(body))
    (value,) = [c for c in range(11) if (weighted + c) % 11 == 1]
    return "X" if value == 10 else str(value)


def test_a_number_ending_in_x_is_valid_and_its_facts_are_derived() -> None:
    person = parse_id_number("11010519491231002X", TODAY)
    assert (person.birth_date, person.sex, person.region) == (
        date(1949, 12, 31),
        Sex.FEMALE,
        "110105",
    )


def test_lower_case_x_is_accepted_and_normalised() -> None:
    assert parse_id_number(" 11010519491231002x ", TODAY).value == "11010519491231002X"


def test_an_odd_sequence_is_male_and_an_even_one_female() -> None:
    assert parse_id_number("360426199101010071", TODAY).sex is Sex.MALE
    assert parse_id_number("44030519850615002X", TODAY).sex is Sex.FEMALE


def test_29_february_of_a_leap_year_is_a_birth_date() -> None:
    assert parse_id_number("110105200002290013", TODAY).birth_date == date(2000, 2, 29)


def test_29_february_of_a_non_leap_year_is_refused_with_birth_date_code() -> None:
    with pytest.raises(IdNumberBirthDateError):
        parse_id_number("110105199902290013", TODAY)


def test_a_birth_date_after_today_is_refused_with_birth_date_code() -> None:
    with pytest.raises(IdNumberBirthDateError, match="after today"):
        parse_id_number("11010520300101001X", TODAY)


def test_a_birth_date_of_today_is_accepted() -> None:
    body = "11010520261125003"
    assert parse_id_number(body + mod_11_2(body), TODAY).birth_date == TODAY


def test_a_birth_date_before_1900_is_refused_with_birth_date_code() -> None:
    with pytest.raises(IdNumberBirthDateError):
        parse_id_number("110105189912310015", TODAY)


def test_a_wrong_province_code_is_refused_with_region_code() -> None:
    with pytest.raises(IdNumberRegionError):
        parse_id_number("990105194912310015", TODAY)


def test_an_unknown_county_is_refused_with_region_code() -> None:
    with pytest.raises(IdNumberRegionError):
        parse_id_number("119999198001010018", TODAY)


def test_a_county_code_from_before_the_county_existed_is_refused_with_region_code() -> None:
    # 360426 (德安县) is known from 1983 on.
    with pytest.raises(IdNumberRegionError):
        parse_id_number("360426198001010010", TODAY)


def test_15_digit_number_is_refused_with_length_code() -> None:
    with pytest.raises(IdNumberLengthError) as caught:
        parse_id_number("110105491231002", TODAY)
    assert caught.value.code == "id_number.length"
    assert "18" in caught.value.en
    assert "18位" in caught.value.zh


@pytest.mark.parametrize("raw", ["A1010519491231002X", "1101051949123100XX", "11010519491231002Y"])
def test_a_non_digit_body_or_bad_last_character_is_refused_with_format_code(raw: str) -> None:
    with pytest.raises(IdNumberFormatError):
        parse_id_number(raw, TODAY)


def test_full_width_input_is_normalised_to_ascii() -> None:
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "11010519491231002x")
    assert parse_id_number(full_width, TODAY).value == "11010519491231002X"


def test_other_scripts_digits_are_refused_with_format_code() -> None:
    arabic_indic_one = "\u0661"
    with pytest.raises(IdNumberFormatError):
        parse_id_number(arabic_indic_one + "1010519491231002X", TODAY)


def test_a_wrong_check_character_is_refused_with_check_digit_code() -> None:
    with pytest.raises(IdNumberCheckDigitError):
        parse_id_number("110105194912310021", TODAY)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("110105491231002", "id_number.length"),
        ("A1010519491231002X", "id_number.format"),
        ("990105194912310015", "id_number.region"),
        ("110105199902290013", "id_number.birth_date"),
        ("11010520300101001X", "id_number.birth_date"),
        ("110105194912310021", "id_number.check_digit"),
    ],
)
def test_errors_have_stable_codes_and_never_echo_the_number(raw: str, code: str) -> None:
    with pytest.raises(IdNumberError) as caught:
        parse_id_number(raw, TODAY)
    error = caught.value
    assert (error.code, error.field) == (code, "id_number")
    for text in (str(error), error.zh, error.en, repr(error)):
        assert raw not in text
        assert raw[6:14] not in text  # nor the birth date inside it


def test_a_parsed_number_shows_only_its_masked_form() -> None:
    person = parse_id_number("11010519491231002X", TODAY)
    assert repr(person) == str(person) == "IdNumber('110***********002X')"
    assert mask_id_number("12345") == "*****"


def test_insured_place_codes_are_checked_against_the_region_database() -> None:
    assert is_known_region("360100")
    assert not is_known_region("990000")
    assert not is_known_region("119999")
    assert not is_known_region("36010")


# Bodies with a county that existed in the birth year, born on or before TODAY.
bodies = st.builds(
    lambda region, born, seq: f"{region}{born:%Y%m%d}{seq:03d}",
    st.sampled_from(["110105", "360100", "440305", "310104", "510107", "650102", "330106"]),
    st.dates(min_value=date(1990, 1, 1), max_value=TODAY),  # all these counties exist
    st.integers(min_value=0, max_value=999),
)


@given(bodies)
def test_any_valid_body_with_its_mod_11_2_check_character_validates(body: str) -> None:
    assert mod_11_2(body) == ric.calc_check_digit(body + "0")  # cross-check with stdnum
    assert parse_id_number(body + mod_11_2(body), TODAY).value == body + mod_11_2(body)


@given(bodies, st.sampled_from("0123456789X"))
def test_any_other_check_character_is_refused(body: str, char: str) -> None:
    if char == mod_11_2(body):
        return
    with pytest.raises(IdNumberCheckDigitError):
        parse_id_number(body + char, TODAY)
