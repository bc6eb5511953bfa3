"""Age on a given day, and the age thresholds of the rules (as data)."""

from __future__ import annotations

from datetime import date

# 年满16周岁: a member aged 16 or over must pass a face check themselves to be bound
# (DOMAIN.md section 2, decision: on the 16th birthday itself the member is 16).
FACE_CHECK_AGE = 16


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


def needs_own_face_check(birth: date, day: date) -> bool:
    """Whether a member born on `birth` must be face-checked to be bound on `day`."""
    return age_on(birth, day) >= FACE_CHECK_AGE
