"""Age on a day: birthdays count, 29 February births age on 1 March in non-leap years."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.age import age_on


def test_member_aged_16_on_birthday_counts_as_16() -> None:
    assert age_on(date(2010, 11, 25), date(2026, 11, 25)) == 16


def test_member_the_day_before_the_16th_birthday_is_15() -> None:
    assert age_on(date(2010, 11, 25), date(2026, 11, 24)) == 15


def test_born_29_february_ages_on_1_march_in_a_non_leap_year() -> None:
    born = date(2008, 2, 29)
    assert age_on(born, date(2023, 2, 28)) == 14
    assert age_on(born, date(2023, 3, 1)) == 15


def test_born_29_february_ages_on_29_february_in_a_leap_year() -> None:
    born = date(2008, 2, 29)
    assert age_on(born, date(2024, 2, 28)) == 15
    assert age_on(born, date(2024, 2, 29)) == 16


def test_age_on_the_birth_day_is_zero_and_a_day_before_birth_is_refused() -> None:
    assert age_on(date(2020, 5, 1), date(2020, 5, 1)) == 0
    with pytest.raises(ValueError, match="before the birth date"):
        age_on(date(2020, 5, 1), date(2020, 4, 30))


def birthday(born: date, years: int) -> date:
    """The `years`-th birthday, by the 1 March rule for 29 February births."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


births = st.dates(min_value=date(1900, 1, 1), max_value=date(2090, 12, 31))


@given(births, st.integers(0, 3000), st.integers(0, 3000))
def test_age_never_decreases_as_the_day_moves_on(born: date, a: int, b: int) -> None:
    first, second = sorted((a, b))
    assert age_on(born, born + timedelta(days=first)) <= age_on(born, born + timedelta(days=second))


@given(births)
def test_age_is_16_exactly_from_the_16th_birthday(born: date) -> None:
    sixteenth = birthday(born, 16)
    assert age_on(born, sixteenth) == 16
    assert age_on(born, sixteenth - timedelta(days=1)) == 15
