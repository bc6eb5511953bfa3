"""structlog set-up: JSON off a terminal, context vars (correlation_id, stream_id, event_id)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

# Keys that must never reach a log line, whatever a caller binds by mistake.
SENSITIVE_KEYS = frozenset({"id_number", "name", "password", "face_result", "payload", "data"})


def _redact(_: Any, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    for key in SENSITIVE_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


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
            _redact,
            structlog.processors.format_exc_info,
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
