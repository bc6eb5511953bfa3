"""The one classification of "a dependency is down, try again later", and how an outage is
told in the logs: one warning when it starts, one line when it ends."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import structlog
from aiokafka.errors import KafkaError

# The broker is down or unreachable. The log is the outbox: commands still succeed meanwhile.
BROKER_DOWN: tuple[type[BaseException], ...] = (KafkaError,)

# PostgreSQL is down, restarting or refusing connections. A restart raises more than a lost
# connection: SQLSTATE 57P01-57P03 on the sessions it ends and on connections made while it
# starts, and asyncpg's InternalClientError for a protocol cut mid-message.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)

# Everything that means "retry later" rather than a bug; OSError covers refused connections
# and TimeoutError (asyncio's and the pool's timeouts).
UNAVAILABLE: tuple[type[BaseException], ...] = (*BROKER_DOWN, *DATABASE_DOWN, OSError)


class Outage:
    """Tells one dependency's outage in the logs: a warning at the first failure, nothing for
    the failures that follow, and one info line with how long it lasted when it ends."""

    def __init__(self, log: structlog.stdlib.BoundLogger, what: str, **context: Any) -> None:
        self.log, self.what, self.context = log, what, context
        self.error: BaseException | None = None
        self.failures = 0
        self._since = 0.0

    @property
    def down(self) -> bool:
        return self.error is not None

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.error is None:
            self._since = time.monotonic()
            self.log.warning(f"{self.what} failing; retrying", **self.context, **describe(error))
        self.error = error

    def recovered(self) -> None:
        if self.error is None:
            return
        self.log.info(
            f"{self.what} working again",
            **self.context,
            after=type(self.error).__name__,
            failures=self.failures,
            down_s=round(time.monotonic() - self._since, 1),
        )
        self.error, self.failures = None, 0


def describe(error: BaseException) -> dict[str, str]:
    """What a log line says of an error. An outage's text ("connection refused") helps the
    operator; a bug's text might hold what a person typed, so it gets the class and the line
    that raised it instead (no traceback: one failure, one line)."""
    fields = {"error_type": type(error).__name__}
    if isinstance(error, UNAVAILABLE):
        fields["error"] = str(error)
    elif (tb := error.__traceback__) is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        fields["raised_at"] = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
    return fields
