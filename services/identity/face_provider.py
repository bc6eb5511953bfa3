"""The face verification provider port, its simulator, and the check of a signed callback.

A provider checks a face outside qinqing and answers later: the simulator by calling back in
process, a real provider through an HTTP callback whose body is HMAC-signed. Only the outcome
ever comes back; no face image passes through qinqing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.identity.face_check import FaceCheckRequested, FaceFailureReason

# What a provider's answer becomes: check id, failure reason (None: verified), when.
Answer = Callable[[str, FaceFailureReason | None, datetime], Awaitable[object]]


class FaceProvider(Protocol):
    def connect(self, answer: Answer) -> None:
        """Where answers go (the record-outcome use case); called once at wiring."""
        ...

    async def start_check(self, check: FaceCheckRequested) -> None:
        """Ask for the check; returns at once, the outcome arrives later through `answer`."""
        ...


@dataclass(frozen=True)
class SimulatedOutcome:
    failure: FaceFailureReason | None = None  # None: the face matches
    latency_s: float = 0.0
    answers: bool = True  # False: never answers, so the check expires


class FaceSimulator:
    """Answers after `latency_s` with the outcome configured for the subject's pseudonym."""

    def __init__(
        self, clock: Callable[[], datetime], default: SimulatedOutcome = SimulatedOutcome()
    ) -> None:
        self.clock, self.default = clock, default
        self.outcomes: dict[str, SimulatedOutcome] = {}
        self._answer: Answer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connect(self, answer: Answer) -> None:
        self._answer = answer

    def set_outcome(self, pseudonym: str, outcome: SimulatedOutcome) -> None:
        self.outcomes[pseudonym] = outcome

    async def start_check(self, check: FaceCheckRequested) -> None:
        outcome = self.outcomes.get(check.subject, self.default)
        if not outcome.answers:
            return
        task = asyncio.create_task(self._reply(check.check_id, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, check_id: str, outcome: SimulatedOutcome) -> None:
        await asyncio.sleep(outcome.latency_s)
        assert self._answer is not None, "FaceSimulator.connect() was not called"
        await self._answer(check_id, outcome.failure, self.clock())

    async def settle(self) -> None:
        """Wait for every answer under way (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def sign_callback(secret: bytes, body: bytes) -> str:
    """The signature a provider sends with a callback: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_callback(secret: bytes, body: bytes, signature_hex: str) -> bool:
    """True only if `signature_hex` signs exactly `body`; compared in constant time."""
    given = signature_hex.strip().lower().encode()  # bytes: any text compares, none raises
    return hmac.compare_digest(sign_callback(secret, body).encode(), given)
