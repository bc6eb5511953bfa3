"""Background work under supervision: each job is a round of work repeated until stopped; a
round that fails, whatever it raised, is retried with backoff and told once per outage, and its
job counts as down (for `/readyz`) until a round succeeds again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from services.runtime.logging import get_logger
from services.runtime.outages import BROKER_DOWN, Outage

log = get_logger(__name__)

# One round of a job; returns how long to pause before the next one.
Round = Callable[[], Awaitable[float]]


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, waking early when `stop` is set."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def after_batch(done: int, batch_size: int, poll_s: float) -> float:
    """A reader's pause after a round: none after a full batch (more is waiting), else `poll_s`."""
    return 0.0 if done >= batch_size else poll_s


class Supervisor:
    """Keeps a service's jobs running and knows which of them are down.

    The backoff doubles from `first_backoff_s` to `max_backoff_s` while a job keeps failing
    (a job that fails at once on a bug must not spin), and starts again after a good round.
    """

    def __init__(self, *, first_backoff_s: float = 0.1, max_backoff_s: float = 5.0) -> None:
        self.first_backoff_s, self.max_backoff_s = first_backoff_s, max_backoff_s
        self._outages: dict[str, Outage] = {}

    @property
    def down(self) -> dict[str, str]:
        """The jobs failing now, each with the class of its last error."""
        return {job: type(o.error).__name__ for job, o in self._outages.items() if o.error}

    @property
    def healthy(self) -> bool:
        """No job is down, a broker outage aside: the log is the outbox, so while Kafka is
        away the service still takes commands and its relay publishes them later."""
        return not any(
            o.error is not None and not isinstance(o.error, BROKER_DOWN)
            for o in self._outages.values()
        )

    async def keep(self, job: str, work: Round, stop: asyncio.Event) -> None:
        """Run `work` round after round until `stop` is set."""
        outage = self._outages[job] = Outage(log, "background work", job=job)
        backoff = self.first_backoff_s
        while not stop.is_set():
            try:
                pause = await work()
            except Exception as exc:  # noqa: BLE001 - supervision: whatever failed, retry it
                outage.failed(exc)
                await wait_or_stop(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            outage.recovered()
            backoff = self.first_backoff_s
            await wait_or_stop(stop, pause)
