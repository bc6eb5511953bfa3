"""Log redaction: sensitive keys and resident ID numbers never reach a log line."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
import structlog

from services.runtime.logging import (
    KafkaOutageFilter,
    configure_logging,
    get_logger,
    mask_id_numbers,
)

LogLines = Callable[[], list[dict[str, Any]]]
ID_NUMBER = "36010219900101123X"
MASKED = "360***********123X"


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[LogLines]:
    """Configure logging as a service does (JSON) and read back what it wrote to stderr, ours
    and the libraries' alike, as dicts (a line that is not JSON fails the test)."""
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, levels = (
        list(root.handlers),
        {n: logging.getLogger(n).level for n in ("", "aiokafka")},
    )
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging("INFO", json=True)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.getvalue().splitlines()]

    try:
        yield read
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


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


# ------------------------------------------------------------ the libraries' stdlib logging

# Shaped like an ID number but with a wrong check digit: pytest's own capture of stdlib
# records keeps them unmasked, and the run's scan for real (valid) ones would flag it.
LOOKALIKE, LOOKALIKE_MASKED = "360102199001011230", "360***********1230"


def test_library_lines_are_json_with_their_level_and_logger_and_masked_id_numbers(
    log_lines: LogLines,
) -> None:
    access = '%s - "%s %s HTTP/%s" %d'
    path = f"/cases?id_number={LOOKALIKE}"
    logging.getLogger("uvicorn.access").info(access, "127.0.0.1:50000", "GET", path, "1.1", 200)
    logging.getLogger("uvicorn.error").info("Started", extra={"color_message": "\x1b[1mStarted"})
    logging.getLogger("asyncpg.pool").warning("Pool.close() is taking over 60 seconds")
    logging.getLogger("qinqing.broker").debug("Received")  # below the level: not written

    lines = log_lines()
    assert [(line["level"], line["logger"]) for line in lines] == [
        ("info", "uvicorn.access"),
        ("info", "uvicorn.error"),
        ("warning", "asyncpg.pool"),
    ]
    assert (
        lines[0]["event"]
        == f'127.0.0.1:50000 - "GET /cases?id_number={LOOKALIKE_MASKED} HTTP/1.1" 200'
    )
    assert "color_message" not in lines[1]
    assert all(line["timestamp"].endswith("Z") for line in lines)


def _logged_while_raising(logger: logging.Logger, error: Exception) -> None:
    try:
        raise error
    except Exception:
        logger.warning("Failed to restore the pool connection floor; retrying", exc_info=True)


def test_an_expected_outage_is_one_line_without_its_traceback_and_a_bug_keeps_it(
    log_lines: LogLines,
) -> None:
    pool = logging.getLogger("asyncpg.pool")
    _logged_while_raising(pool, ConnectionRefusedError(111, "Connect call failed"))
    _logged_while_raising(pool, asyncpg.CannotConnectNowError("the database system is starting up"))
    try:
        raise asyncpg.AdminShutdownError("terminating connection due to administrator command")
    except asyncpg.AdminShutdownError:
        get_logger("t").exception("relay round failed")
    _logged_while_raising(pool, ValueError(f"a bug near {LOOKALIKE}"))

    refused, starting, ours, bug = log_lines()
    for line in (refused, starting, ours):
        assert "exception" not in line
    assert (refused["error_type"], starting["error_type"], ours["error_type"]) == (
        "ConnectionRefusedError",
        "CannotConnectNowError",
        "AdminShutdownError",
    )
    assert starting["error"] == "the database system is starting up"
    assert "Traceback" in bug["exception"]
    assert LOOKALIKE_MASKED in bug["exception"]
    assert LOOKALIKE not in bug["exception"]


def test_a_kafka_outage_is_one_warning_and_one_line_when_the_client_reconnects(
    log_lines: LogLines,
) -> None:
    client = logging.getLogger("aiokafka.client")
    group = logging.getLogger("aiokafka.consumer.group_coordinator")
    refused = ConnectionRefusedError(111, "Connect call failed")
    group.info("(Re-)joining group %s", "g")  # the client's chatter stays out
    for _ in range(1000):
        client.error('Unable connect to "%s:%s": %s', "127.0.0.1", 19092, refused)
    group.error("Marking the coordinator dead (node %s)for group %s.", 1, "g")
    group.info("OffsetCommit failed for group %s due to %s, will retry", "g", "timeout")
    group.info("Discovered coordinator %s for group %s", 1, "g")
    group.info("Joined group '%s' (generation %s) with member_id %s", "g", 2, "m")
    group.warning("Heartbeat failed for group %s: coordinator (node %s) is not valid", "h", 1)

    lines = log_lines()
    unable = 'Unable connect to "127.0.0.1:19092": [Errno 111] Connect call failed'
    assert [(line["level"], line["event"]) for line in lines] == [
        ("warning", unable),
        ("info", "kafka client reaches the broker again"),
    ]
    started, recovered = lines
    assert started["repeats"] == "suppressed until the client reaches the broker again"
    assert recovered["suppressed"] == 1000  # 999 more refusals and the coordinator's error
    assert recovered["logger"] == "aiokafka.consumer.group_coordinator"


def _kafka_error(created: float) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "aiokafka.conn", "levelno": logging.ERROR, "msg": "refused", "created": created}
    )


def test_a_kafka_outage_quiet_for_a_minute_without_reconnecting_is_followed_by_a_new_one() -> None:
    quiet = KafkaOutageFilter()
    passed = [quiet.filter(_kafka_error(t)) for t in (0.0, 30.0, 89.0, 150.0, 151.0)]
    assert passed == [True, False, False, True, False]  # each gap under 60 s counts as one
    assert quiet.suppressed == 1


def _kafka_reconnected(created: float) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": "aiokafka.consumer.group_coordinator",
            "levelno": logging.INFO,
            "msg": "Discovered coordinator %s for group %s",
            "args": (1, "g"),
            "created": created,
        }
    )


def test_errors_just_after_the_client_reconnects_are_its_other_connections_catching_up() -> None:
    quiet = KafkaOutageFilter()
    assert quiet.filter(_kafka_error(0.0))
    assert quiet.filter(_kafka_reconnected(10.0))  # the outage's end
    assert not quiet.filter(_kafka_reconnected(10.5))  # another group's: chatter again
    assert not quiet.filter(_kafka_error(12.0))  # another group's heartbeat, settling
    assert quiet.filter(_kafka_error(16.0))  # 6 s after the sign: a new outage


def test_kafka_outage_lines_below_the_asked_level_are_counted_but_not_written() -> None:
    quiet = KafkaOutageFilter(logging.ERROR)
    assert not quiet.filter(_kafka_error(0.0))  # its first line, made a warning
    assert not quiet.filter(_kafka_error(1.0))
    assert quiet.suppressed == 1
