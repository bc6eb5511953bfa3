"""Kafka consumers with an inbox (one effect per event id) and a dead-letter topic.

Each message runs in one database transaction: inbox row, then the handler's effect. The Kafka
offset is committed only after that transaction commits (FastStream's manual ack policy), so a
crash in between redelivers the message and the inbox row turns the repeat into a no-op.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from uuid import UUID, uuid5

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError

from contracts.envelope import Envelope, dead_letter_topic
from services.runtime.decider import CommandContext
from services.runtime.events import check_schema_name
from services.runtime.kafka_codec import Headers, MalformedMessageError, from_record
from services.runtime.logging import get_logger
from services.runtime.outages import UNAVAILABLE, Outage

log = get_logger(__name__)

Handler = Callable[[asyncpg.Connection, Envelope, dict[str, Any]], Awaitable[None]]
Effect = Callable[[asyncpg.Connection], Awaitable[None]]

ERROR_TEXT_LIMIT = 2000


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"
    SKIPPED = "skipped"  # a type the consumer does not handle: no transaction, no commit


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @classmethod
    def from_record(cls, record: ConsumerRecord[Any, Any]) -> IncomingMessage:
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            [(name, bytes(value or b"")) for name, value in record.headers],
        )


class Inbox(Protocol):
    async def once(self, consumer: str, event_id: UUID, effect: Effect) -> bool:
        """Run `effect` in a transaction that records (consumer, event_id); False if seen before."""
        ...


class PostgresInbox:
    """The `inbox` table of the consuming service's schema."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self._claim_sql = (
            f"INSERT INTO {check_schema_name(schema)}.inbox (consumer, event_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true"
        )

    async def once(self, consumer: str, event_id: UUID, effect: Effect) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(self._claim_sql, consumer, event_id):
                return False
            await effect(cast(asyncpg.Connection, conn))  # the pool's proxy forwards every call
            return True


class InMemoryInbox:
    """Same contract as PostgresInbox for unit tests; the effect gets `connection` (a fake)."""

    def __init__(self, connection: Any = None) -> None:
        self.seen: set[tuple[str, UUID]] = set()
        self.connection = connection

    async def once(self, consumer: str, event_id: UUID, effect: Effect) -> bool:
        if (consumer, event_id) in self.seen:
            return False
        await effect(self.connection)  # an exception leaves no inbox row, as a rollback would
        self.seen.add((consumer, event_id))
        return True


class DeadLetters(Protocol):
    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None: ...


class BrokerDeadLetters:
    """Publishes dead letters through a FastStream Kafka broker (headers travel as text)."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        text = {name: raw.decode("utf-8", errors="replace") for name, raw in headers}
        await self.broker.publish(value or b"", topic, key=key, headers=text)


class InMemoryDeadLetters:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes | None, bytes | None, Headers]] = []

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        self.published.append((topic, key, value, list(headers)))


def error_text(error: BaseException) -> str:
    """Why a message failed, without the offending values (they may be personal data)."""
    if isinstance(error, ValidationError):
        text = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_input=False)
        )
    else:
        text = str(error)
    return text[:ERROR_TEXT_LIMIT] or type(error).__name__


def error_headers(message: IncomingMessage, consumer: str, error: BaseException) -> Headers:
    """The original headers plus why and where the message failed."""
    extra = {
        "x-error": error_text(error),
        "x-error-type": f"{type(error).__module__}.{type(error).__qualname__}",
        "x-consumer": consumer,
        "x-original-topic": message.topic,
        "x-original-partition": str(message.partition),
        "x-original-offset": str(message.offset),
    }
    kept = [(name, value) for name, value in message.headers if name not in extra]
    return kept + [(name, value.encode()) for name, value in extra.items()]


class InboxConsumer:
    """Applies each event once through `handler`; poison goes to `<topic>.dlq`, then on."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        inbox: Inbox,
        dead_letters: DeadLetters,
        *,
        wants: Collection[str] | None = None,
        max_retries: int = 3,
        retry_delay_s: float = 0.05,
    ) -> None:
        self.name = name
        self.handler = handler
        self.inbox = inbox
        self.dead_letters = dead_letters
        # The event types (`ce_type`) the handler acts on; None: every type.
        self.wants = None if wants is None else frozenset(t.encode() for t in wants)
        self.max_retries = max_retries
        self.retry_delay_s = retry_delay_s

    def skips(self, message: IncomingMessage) -> bool:
        """A type the handler ignores anyway: passing it by costs no inbox transaction and no
        offset commit (the next handled message's commit covers it; a restart reads it again,
        harmlessly). A message without a type goes on to be dead-lettered as malformed."""
        if self.wants is None:
            return False
        kind = next((value for name, value in message.headers if name == "ce_type"), None)
        return kind is not None and kind not in self.wants

    async def process(self, message: IncomingMessage) -> Outcome:
        """Raises only UNAVAILABLE errors (a database or broker outage is not the message's
        fault: the caller redelivers it); all else ends in an Outcome."""
        if self.skips(message):
            return Outcome.SKIPPED
        try:
            envelope, data = from_record(message.headers, message.value)
        except MalformedMessageError as exc:
            return await self._dead_letter(message, exc)

        async def effect(conn: asyncpg.Connection) -> None:
            await self.handler(conn, envelope, data)

        with structlog.contextvars.bound_contextvars(
            event_id=str(envelope.id),
            stream_id=envelope.streamid,
            correlation_id=envelope.correlationid,
        ):
            return await self._apply(message, envelope, effect)

    async def _apply(self, message: IncomingMessage, envelope: Envelope, effect: Effect) -> Outcome:
        for attempt in range(self.max_retries + 1):
            try:
                applied = await self.inbox.once(self.name, envelope.id, effect)
            except UNAVAILABLE:
                raise
            except Exception as exc:  # noqa: BLE001 - any handler error is the message's problem
                if attempt == self.max_retries:
                    return await self._dead_letter(message, exc)
                log.info(
                    "handler failed; retrying",
                    consumer=self.name,
                    event_id=str(envelope.id),
                    attempt=attempt + 1,
                    error_type=type(exc).__name__,
                )
                await asyncio.sleep(self.retry_delay_s * 2**attempt)
            else:
                return Outcome.APPLIED if applied else Outcome.DUPLICATE
        raise AssertionError("unreachable")  # pragma: no cover

    async def _dead_letter(self, message: IncomingMessage, error: Exception) -> Outcome:
        dlq = dead_letter_topic(message.topic)
        headers = error_headers(message, self.name, error)
        await self.dead_letters.publish(dlq, message.key, message.value, headers)
        log.warning(
            "message dead-lettered",
            consumer=self.name,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            error_type=type(error).__name__,
            dead_letter_topic=dlq,
        )
        return Outcome.DEAD_LETTERED

    def subscribe(
        self,
        broker: KafkaBroker,
        *topics: str,
        group_id: str | None = None,
        auto_offset_reset: Literal["latest", "earliest", "none"] = "earliest",
        transient_backoff_s: float = 1.0,
    ) -> Any:
        """Register on `broker` as a FastStream subscriber of `topics`, acking only after commit."""

        async def as_is(message: StreamMessage[Any]) -> StreamMessage[Any]:
            # The codec validates; FastStream must not decode poison first. The handler gets the
            # message itself as its one plain argument: asking for it through FastStream's
            # `Context` (a sync dependency) would cost a worker-thread hop on every message.
            return message

        subscriber = broker.subscriber(
            *topics,
            group_id=group_id or self.name,
            auto_offset_reset=auto_offset_reset,
            ack_policy=AckPolicy.MANUAL,
            decoder=as_is,
        )

        # Told once per outage, however many redeliveries it takes.
        outage = Outage(log, "consumer", consumer=self.name)

        async def on_message(message: Any) -> None:
            assert isinstance(message, KafkaMessage)
            record = message.raw_message
            assert not isinstance(record, tuple)
            try:
                outcome = await self.process(IncomingMessage.from_record(record))
            except Exception as exc:  # noqa: BLE001 - the DB or Kafka is down, not the message
                outage.failed(exc)
                await message.nack()  # seeks back: the same message comes again
                await asyncio.sleep(transient_backoff_s)
                return
            outage.recovered()
            if outcome is not Outcome.SKIPPED:
                await message.ack()

        subscriber(on_message)
        return subscriber


BROKER_LOGGER = "qinqing.broker"


def service_broker(bootstrap_servers: str) -> KafkaBroker:
    """The broker a service consumes with. FastStream logs through our `qinqing.broker`
    logger (its own resets its level at start), its per-message "Received"/"Processed" lines
    at DEBUG: at INFO they would outnumber every other log line of a busy service; the
    outcomes that matter (dead letters, redeliveries) are logged by InboxConsumer. Without
    FastDepends (`apply_types=False`): `InboxConsumer.subscribe`'s handler takes the message as
    is, so resolving and casting its one argument would only cost time on every message."""
    logger = logging.getLogger(BROKER_LOGGER)
    return KafkaBroker(bootstrap_servers, logger=logger, log_level=logging.DEBUG, apply_types=False)


def event_context(envelope: Envelope, clock: Callable[[], datetime], name: str) -> CommandContext:
    """The context of a command a consumer sends for an event: its id derives from the event
    id and `name`, so a redelivery repeats the very same command (and records nothing new)."""
    return CommandContext(
        command_id=uuid5(envelope.id, name),
        now=clock(),
        correlation_id=envelope.correlationid or str(envelope.id),
        actor=envelope.actor or envelope.source,
        causation_id=str(envelope.id),
    )


if TYPE_CHECKING:  # mypy proves that the adapters and the fakes both implement the ports
    _inboxes: tuple[type[Inbox], ...] = (PostgresInbox, InMemoryInbox)
    _dead_letters: tuple[type[DeadLetters], ...] = (BrokerDeadLetters, InMemoryDeadLetters)
