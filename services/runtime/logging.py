"""structlog set-up: JSON off a terminal, context vars (correlation_id, stream_id, event_id),
the libraries' stdlib logging through the same processors, aiokafka's outages told once."""

from __future__ import annotations

import logging
import math
import re
import sys
from typing import Any

import structlog

from services.runtime.outages import UNAVAILABLE

# Keys that must never reach a log line, whatever a caller binds by mistake.
SENSITIVE_KEYS = frozenset({"id_number", "name", "password", "face_result", "payload", "data"})


# A mainland resident ID number (GB 11643): 17 digits and a check character, not inside a
# longer run of digits or letters. Masked wherever it appears, whatever the key it came under.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{11}(\d{3}[\dXx])(?![0-9A-Za-z])")


def mask_id_numbers(text: str) -> str:
    """`36010219900101123X` -> `360***********123X` (first 3 and last 4 kept)."""
    return _ID_NUMBER.sub(lambda m: f"{m[1]}{'*' * 11}{m[2]}", text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_id_numbers(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_masked(v) for v in value)
    return value


def _redact(_: Any, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    for key in SENSITIVE_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return {key: _masked(value) for key, value in event_dict.items()}


def _outage_without_traceback(
    _: Any, __: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """A dependency that is down (an expected outage) is told by its class and text: its
    traceback says nothing an operator can act on and spreads one failure over many lines."""
    exc_info = event_dict.get("exc_info")
    error = sys.exc_info()[1] if exc_info is True else exc_info
    if isinstance(error, tuple):
        error = error[1]
    if isinstance(error, UNAVAILABLE):
        del event_dict["exc_info"]
        event_dict.setdefault("error_type", type(error).__name__)
        event_dict.setdefault("error", str(error))
    return event_dict


class KafkaOutageFilter(logging.Filter):
    """aiokafka logs every failed attempt while a broker is away, thousands of lines a
    minute. This passes the first warning or error of an outage as one warning, counts the
    rest, and turns the client's first sign of talking to the broker again into one line
    with the count. Its other INFO lines stay out, as before."""

    # The format strings of aiokafka's INFO lines that only a broker's answer produces.
    RECONNECTED = ("Discovered coordinator", "Joined group", "Successfully synced group")
    # Errors this soon after that sign are the client's other connections (each consumer
    # group's coordinator, the fetcher) catching up, not a new outage.
    SETTLE_S = 5.0
    # An outage that went quiet this long without a sign of recovery is over all the same:
    # the next error starts a new one instead of being counted into a stale one.
    QUIET_S = 60.0

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__()
        self.level = level  # what the operator asked for; aiokafka itself logs at INFO
        self.suppressed = 0
        self._since: float | None = None  # when the outage began; None: no outage
        self._last = 0.0  # the outage's latest error
        self._reconnected = -math.inf  # the latest sign of recovery

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        if record.levelno < logging.WARNING:
            return self._recovered(record)
        if self._since is not None and record.created - self._last < self.QUIET_S:
            self.suppressed += 1
            self._last = record.created
            return False
        if record.created - self._reconnected < self.SETTLE_S:
            return False
        self._since = self._last = record.created
        self.suppressed = 0
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.repeats = "suppressed until the client reaches the broker again"
        return record.levelno >= self.level

    def _recovered(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.RECONNECTED):
            return False
        self._reconnected = record.created
        if self._since is None:
            return False
        record.msg, record.args = "kafka client reaches the broker again", ()
        record.suppressed = self.suppressed
        record.down_s = round(record.created - self._since, 1)
        self._since = None
        return record.levelno >= self.level


# What the filter above adds to a record, kept in the line (other extras, such as
# uvicorn's colour copy of its message, are not).
_EXTRAS = ("repeats", "suppressed", "down_s")


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours among the root logger's handlers (a test runner's stay where they are)."""


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger once per process: the libraries' lines
    (aiokafka, uvicorn's access and error logs, asyncpg, FastStream) go through the same
    processors as ours, so every line is JSON when JSON is on, and masked the same way."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _outage_without_traceback,
        structlog.processors.format_exc_info,
        _redact,  # after the traceback is text, so exception messages are masked too
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = _Handler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(allow=_EXTRAS),
                *shared,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(KafkaOutageFilter(logging.getLevelName(level)))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _Handler)] + [handler]
    root.setLevel(level)
    # INFO, whatever the level asked for: the filter needs the client's signs of recovery.
    logging.getLogger("aiokafka").setLevel(logging.INFO)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
