"""Finds resident ID numbers in bytes: the suite's check that none reaches a topic or a log."""

from __future__ import annotations

import re

from contracts.id_number import check_char

_CANDIDATE = re.compile(rb"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z])")

# Filled by tests/conftest.py from every test's captured output; checked at session end.
CAPTURED_LEAKS: list[str] = []


def id_numbers_in(raw: bytes) -> list[str]:
    """Checksum-valid resident ID numbers in `raw` (masked, so the report leaks nothing)."""
    found = []
    for match in _CANDIDATE.finditer(raw):
        text = match.group().decode().upper()
        if check_char(text[:17]) == text[17]:
            found.append(f"{text[:3]}***********{text[-4:]}")
    return found
