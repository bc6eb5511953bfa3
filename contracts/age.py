"""Age on a given day, as every rule with an age threshold counts it."""

from __future__ import annotations

from datetime import date


def age_on(birth: date, day: date) -> int:
    """Completed years of life on `day`; the birthday itself counts (16 on the 16th birthday).

    Someone born on 29 February has their birthday on 1 March in a non-leap year: on
    28 February they are not a year older yet, on 1 March they are. Comparing (month, day)
    pairs gives exactly that, since (2, 28) < (2, 29) < (3, 1).
    """
    if day < birth:
        raise ValueError("the day is before the birth date")
    not_yet = (day.month, day.day) < (birth.month, birth.day)
    return day.year - birth.year - not_yet
