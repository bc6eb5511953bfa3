"""Binding's own age rule: a member shows their own face from the 16th birthday on."""

from __future__ import annotations

from datetime import date

from services.binding.rules import FaceWho, Method, face_check_needed


def test_member_aged_16_on_birthday_needs_own_face_check() -> None:
    assert face_check_needed(Method.ID_NUMBER, date(2010, 11, 25), date(2026, 11, 25)) is (
        FaceWho.MEMBER
    )


def test_member_the_day_before_the_16th_birthday_needs_no_face_check() -> None:
    assert face_check_needed(Method.ID_NUMBER, date(2010, 11, 25), date(2026, 11, 24)) is (
        FaceWho.NONE
    )
