"""Outbox relay: publishes a service's log to its Kafka topic in global order, then checkpoints.

Delivery is at least once. A crash (or a Kafka failure) between the broker's acknowledgement and
the checkpoint republishes the tail of the last batch; consumers drop those by event id (inbox).
Per-key order holds because the producer is idempotent (in-partition order survives retries)
and one relay batch is acknowledged in full before the next is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

from contracts.envelope import topic as service_topic
from services.runtime.checkpoints import CheckpointStore
from services.runtime.events import EventStore, Position, RecordedEvent
from services.runtime.kafka_codec import to_record
from services.runtime.logging import get_logger

# Re-exported: the one classification lives in outages, callers have long imported it here.
from services.runtime.outages import UNAVAILABLE as UNAVAILABLE  # noqa: PLC0414
from services.runtime.supervisor import Supervisor, after_batch

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ProducerSettings:
    bootstrap_servers: str
    client_id: str = "qinqing-relay"
    linger_ms: int = 5
    max_batch_size: int = 1024 * 1024  # a relay batch fits in one producer batch per partition
    request_timeout_ms: int = 30_000


class Producer(Protocol):
    """The part of AIOKafkaProducer the relay uses (a fake stands in for unit tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


def kafka_producer(settings: ProducerSettings) -> Producer:
    producer: Producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_size,
        request_timeout_ms=settings.request_timeout_ms,
    )
    return producer


class OutboxRelay:
    """Reads the store after its checkpoint and publishes to `qinqing.<service>.v1`."""

    def __init__(
        self,
        store: EventStore,
        checkpoints: CheckpointStore,
        service: str,
        producer_factory: Callable[[], Producer],
        *,
        batch_size: int = 1000,
        poll_interval_s: float = 0.05,
        slow_ack_warning_s: float = 5.0,
        topic: str | None = None,
    ) -> None:
        self.store = store
        self.checkpoints = checkpoints
        self.service = service
        self.topic = topic or service_topic(service)
        self.checkpoint_name = f"relay:{self.topic}"
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.slow_ack_warning_s = slow_ack_warning_s
        self.published = 0
        self._producer_factory = producer_factory
        self._producer: Producer | None = None
        # Where this relay stands, read from its checkpoint once and then kept as it saves.
        self._position: Position | None = None

    async def _next_batch(self) -> list[RecordedEvent]:
        if self._position is None:
            self._position = await self.checkpoints.load(self.checkpoint_name)
        after = self._position
        batch: list[RecordedEvent] = []
        events = self.store.read_all(after, batch_size=self.batch_size)
        async for event in events:
            batch.append(event)
            if len(batch) == self.batch_size:
                break
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
        return batch

    async def _started_producer(self) -> Producer:
        if self._producer is None:
            producer = self._producer_factory()
            try:
                await producer.start()
            except BaseException:
                await self._stop(producer)
                raise
            self._producer = producer
        return self._producer

    async def run_once(self) -> int:
        """Publish one batch; returns how many events the broker acknowledged (0: caught up)."""
        batch = await self._next_batch()
        if not batch:
            return 0
        producer = await self._started_producer()
        try:
            futures = []
            for event in batch:
                record = to_record(event, self.service)
                futures.append(
                    await producer.send(
                        self.topic, value=record.value, key=record.key, headers=record.headers
                    )
                )
            await self._acknowledged(futures)
        except BaseException:
            # A producer that failed mid-batch may hold queued records of this batch: drop it so
            # nothing from it can land after the retry, which starts again from the checkpoint.
            await self.close()
            raise
        await self.checkpoints.save(self.checkpoint_name, batch[-1].position)
        self._position = batch[-1].position
        self.published += len(batch)
        return len(batch)

    async def _acknowledged(self, futures: list[asyncio.Future[Any]]) -> None:
        started = time.monotonic()
        _, pending = await asyncio.wait(futures, timeout=self.slow_ack_warning_s)
        if pending:
            # The idempotent producer retries until the broker is back; say so once, then wait.
            log.warning("kafka is not acknowledging; relay waits", topic=self.topic)
            await asyncio.wait(pending)
            waited = round(time.monotonic() - started, 1)
            log.info("kafka acknowledged again", topic=self.topic, waited_s=waited)
        for future in futures:
            future.result()  # raise the first send error, if any

    async def round(self) -> float:
        """One batch, then the pause before the next (none while a backlog remains)."""
        return after_batch(await self.run_once(), self.batch_size, self.poll_interval_s)

    async def run(self, stop: asyncio.Event, supervisor: Supervisor | None = None) -> None:
        """Publish until `stop` is set, under `supervisor` (one of its own if none): a round
        that fails (Kafka or the DB down, or anything else) is retried with backoff."""
        try:
            await (supervisor or Supervisor()).keep(f"relay:{self.topic}", self.round, stop)
        finally:
            await self.close()

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop(producer)

    @staticmethod
    async def _stop(producer: Producer) -> None:
        # stop() flushes; with the broker gone it would wait for ever, so bound it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 5.0)
