"""structlog set-up: JSON off a terminal, context vars (correlation_id, stream_id, event_id)."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

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


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact,  # after the traceback is text, so exception messages are masked too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    # aiokafka retries loudly while a broker is down; one line per failure is noise for operators.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
