"""Log redaction: sensitive keys and resident ID numbers never reach a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from services.runtime.logging import configure_logging, get_logger, mask_id_numbers

LogLines = Callable[[], list[dict[str, Any]]]
ID_NUMBER = "36010219900101123X"
MASKED = "360***********123X"


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Configure logging as a service does (JSON) and read back what it wrote, as dicts."""
    saved, root_handlers = structlog.get_config(), list(logging.getLogger().handlers)
    configure_logging("INFO", json=True)
    out = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.getvalue().splitlines()]

    try:
        yield read
    finally:
        structlog.configure(**saved)
        logging.getLogger().handlers[:] = root_handlers


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (ID_NUMBER, MASKED),
        (ID_NUMBER.lower(), MASKED.lower()),
        ("110105194912310029", "110***********0029"),
        (f"duplicate of {ID_NUMBER}.", f"duplicate of {MASKED}."),
        (f"{ID_NUMBER},{ID_NUMBER}", f"{MASKED},{MASKED}"),
        ("1101051949123100291", "1101051949123100291"),  # 19 digits: not an ID number
        ("11010519491231002", "11010519491231002"),  # 17 digits
        ("a11010519491231002X", "a11010519491231002X"),  # inside a longer token
        ("p_Zk3XbQ", "p_Zk3XbQ"),
    ],
)
def test_id_numbers_are_masked_to_first_three_and_last_four(text: str, masked: str) -> None:
    assert mask_id_numbers(text) == masked


def test_an_id_number_is_masked_under_any_key_and_in_nested_values(log_lines: LogLines) -> None:
    get_logger("t").info(
        f"registering {ID_NUMBER}",
        person=ID_NUMBER,
        attempt=3,
        detail={"values": [ID_NUMBER, "ok"], "pair": (1, ID_NUMBER)},
    )
    [line] = log_lines()
    assert ID_NUMBER not in json.dumps(line)
    assert line["event"] == f"registering {MASKED}"
    assert line["person"] == MASKED
    assert line["attempt"] == 3
    assert line["detail"] == {"values": [MASKED, "ok"], "pair": [1, MASKED]}


def test_an_id_number_in_an_exception_message_is_masked(log_lines: LogLines) -> None:
    try:
        raise ValueError(f"bad row {ID_NUMBER}")
    except ValueError:
        get_logger("t").exception("import failed")
    [line] = log_lines()
    assert ID_NUMBER not in line["exception"]
    assert MASKED in line["exception"]


def test_sensitive_keys_are_still_redacted_whole(log_lines: LogLines) -> None:
    get_logger("t").info("registered", name="张三", id_number=ID_NUMBER, password="123456")  # noqa: S106
    [line] = log_lines()
    assert (line["name"], line["id_number"], line["password"]) == ("[redacted]",) * 3
