"""Codec, inbox consumer and relay rules, with the in-memory store and fakes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from contracts.envelope import Envelope
from services.runtime.checkpoints import InMemoryCheckpoints
from services.runtime.consumer import (
    InboxConsumer,
    IncomingMessage,
    InMemoryDeadLetters,
    InMemoryInbox,
    Outcome,
)
from services.runtime.events import NO_STREAM, EventRecord, NewEvent, RecordedEvent
from services.runtime.kafka_codec import (
    MalformedMessageError,
    attributes_of,
    from_record,
    to_record,
)
from services.runtime.memory import InMemoryEventStore
from services.runtime.projection import kafka_projection
from services.runtime.relay import OutboxRelay

T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
META = {"correlation_id": "corr-1", "causation_id": "cause-1", "actor": "holder:p-42"}


def event(n: int, **meta: Any) -> NewEvent:
    return NewEvent("MemberBound", {"n": n, "member": "p-7"}, T0, metadata={**META, **meta})


async def recorded(store: InMemoryEventStore, stream: str, count: int) -> list[RecordedEvent]:
    await store.append(stream, NO_STREAM, [event(n) for n in range(1, count + 1)])
    return await store.read_stream(stream)


def incoming(
    e: RecordedEvent, offset: int = 0, topic: str = "qinqing.binding.v1"
) -> IncomingMessage:
    record = to_record(e, "binding")
    return IncomingMessage(topic, 0, offset, record.key, record.value, record.headers)


# ------------------------------------------------------------------------------------ codec


async def test_a_record_parses_back_to_the_envelope_and_data_it_was_made_from() -> None:
    [stored] = await recorded(InMemoryEventStore(), "family-1", 1)
    record = to_record(stored, "binding")

    envelope, data = from_record(record.headers, record.value)

    assert envelope == Envelope.model_validate(attributes_of(stored, "binding"))
    assert data == stored.data
    assert record.key == b"family-1"
    assert record.value == stored.data_json.encode()
    headers = dict(record.headers)
    assert headers["ce_type"] == b"qinqing.binding.MemberBound.v1"
    assert headers["ce_source"] == b"/qinqing/binding"
    assert headers["ce_time"] == b"2026-03-01T08:30:00Z"
    assert headers["content-type"] == b"application/json"
    assert (envelope.correlationid, envelope.causationid, envelope.actor) == (
        "corr-1",
        "cause-1",
        "holder:p-42",
    )
    assert all(name.startswith("ce_") or name == "content-type" for name in headers)


async def test_absent_audit_metadata_is_left_out_of_the_headers() -> None:
    store = InMemoryEventStore()
    await store.append("s", NO_STREAM, [NewEvent("Opened", {}, T0)])
    [stored] = await store.read_stream("s")
    record = to_record(stored, "review")
    assert "ce_actor" not in dict(record.headers)
    envelope, _ = from_record(record.headers, record.value)
    assert envelope.actor is None


async def test_unknown_extensions_are_ignored_by_the_reader() -> None:
    [stored] = await recorded(InMemoryEventStore(), "s", 1)
    record = to_record(stored, "binding")
    envelope, _ = from_record([*record.headers, ("ce_newthing", b"x")], record.value)
    assert envelope.id == stored.event_id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, v: ([x for x in h if x[0] != "ce_id"], v), "id"),
        (lambda h, v: (h, b"{not json"), "not JSON"),
        (lambda h, v: (h, b"[1, 2]"), "JSON object"),
        (lambda h, v: (h, None), "no body"),
        (lambda h, v: ([*h, ("ce_id", b"again")], v), "twice"),
        (lambda h, v: ([*h[:-1], (h[-1][0], b"\xff")], v), "UTF-8"),
        (
            lambda h, v: ([(n, b"3.0") if n == "ce_specversion" else (n, x) for n, x in h], v),
            "specversion",
        ),
    ],
)
async def test_a_malformed_record_raises_a_typed_error(change: Any, reason: str) -> None:
    [stored] = await recorded(InMemoryEventStore(), "s", 1)
    record = to_record(stored, "binding")
    headers, value = change(record.headers, record.value)
    with pytest.raises(MalformedMessageError, match=reason):
        from_record(headers, value)


# --------------------------------------------------------------------------------- consumer


class Effects:
    def __init__(self, failures: int = 0) -> None:
        self.applied: list[int] = []
        self.calls = 0
        self.failures = failures

    async def __call__(self, conn: Any, envelope: Envelope, data: dict[str, Any]) -> None:
        self.calls += 1
        if data["n"] < 0 or self.calls <= self.failures:
            raise ValueError(f"cannot apply n={data['n']}")
        self.applied.append(data["n"])


def consumer(handler: Effects, dlq: InMemoryDeadLetters, max_retries: int = 2) -> InboxConsumer:
    return InboxConsumer(
        "family-view", handler, InMemoryInbox(), dlq, max_retries=max_retries, retry_delay_s=0
    )


async def test_the_same_event_delivered_twice_has_one_effect() -> None:
    [stored] = await recorded(InMemoryEventStore(), "s", 1)
    effects, dlq = Effects(), InMemoryDeadLetters()
    subject = consumer(effects, dlq)

    assert await subject.process(incoming(stored, offset=0)) is Outcome.APPLIED
    assert await subject.process(incoming(stored, offset=7)) is Outcome.DUPLICATE
    assert effects.applied == [1]
    assert dlq.published == []


async def test_a_type_the_consumer_does_not_want_is_passed_by_without_an_effect() -> None:
    [stored] = await recorded(InMemoryEventStore(), "s", 1)
    effects, dlq = Effects(), InMemoryDeadLetters()
    inbox = InMemoryInbox()
    wanted = InboxConsumer("views", effects, inbox, dlq, wants={"qinqing.binding.MemberBound.v1"})
    other = InboxConsumer("views", effects, inbox, dlq, wants={"qinqing.binding.Other.v1"})

    assert await other.process(incoming(stored)) is Outcome.SKIPPED
    assert effects.calls == 0
    assert await wanted.process(incoming(stored)) is Outcome.APPLIED
    assert effects.applied == [1]


async def test_a_message_without_a_type_is_dead_lettered_even_by_a_choosy_consumer() -> None:
    [stored] = await recorded(InMemoryEventStore(), "s", 1)
    message = incoming(stored)
    untyped = replace(message, headers=[h for h in message.headers if h[0] != "ce_type"])
    dlq = InMemoryDeadLetters()
    choosy = InboxConsumer("views", Effects(), InMemoryInbox(), dlq, wants={"x"})
    assert await choosy.process(untyped) is Outcome.DEAD_LETTERED
    assert len(dlq.published) == 1


async def test_invalid_json_is_dead_lettered_with_the_error_and_the_next_is_applied() -> None:
    events = await recorded(InMemoryEventStore(), "s", 2)
    effects, dlq = Effects(), InMemoryDeadLetters()
    subject = consumer(effects, dlq)
    poison = IncomingMessage(
        "qinqing.binding.v1", 2, 41, b"s", b"{oops", incoming(events[0]).headers
    )

    assert await subject.process(poison) is Outcome.DEAD_LETTERED
    assert await subject.process(incoming(events[1], offset=42)) is Outcome.APPLIED

    [(topic, key, value, headers)] = dlq.published
    assert (topic, key, value) == ("qinqing.binding.v1.dlq", b"s", b"{oops")
    found = dict(headers)
    assert b"not JSON" in found["x-error"]
    assert found["x-error-type"] == b"services.runtime.kafka_codec.MalformedMessageError"
    assert (
        found["x-original-topic"],
        found["x-original-partition"],
        found["x-original-offset"],
    ) == (
        b"qinqing.binding.v1",
        b"2",
        b"41",
    )
    assert found["ce_id"] == str(events[0].event_id).encode()  # original headers kept
    assert effects.applied == [2]


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered() -> None:
    store = InMemoryEventStore()
    await store.append("s", NO_STREAM, [event(-1), event(5)])
    bad, good = await store.read_stream("s")
    effects, dlq = Effects(), InMemoryDeadLetters()
    subject = consumer(effects, dlq, max_retries=2)

    assert await subject.process(incoming(bad)) is Outcome.DEAD_LETTERED
    assert effects.calls == 3  # the first try and two retries
    assert dict(dlq.published[0][3])["x-error"] == b"cannot apply n=-1"
    assert await subject.process(incoming(good, offset=1)) is Outcome.APPLIED
    assert effects.applied == [5]


async def test_a_dead_letter_names_the_invalid_field_but_not_its_value() -> None:
    class Person(BaseModel):
        id_number: int

    async def strict(conn: Any, envelope: Envelope, data: dict[str, Any]) -> None:
        Person.model_validate({"id_number": "11010519491231002X"})

    [stored] = await recorded(InMemoryEventStore(), "s", 1)
    dlq = InMemoryDeadLetters()
    subject = InboxConsumer("c", strict, InMemoryInbox(), dlq, max_retries=0)
    assert await subject.process(incoming(stored)) is Outcome.DEAD_LETTERED
    error = dict(dlq.published[0][3])["x-error"]
    assert error.startswith(b"id_number: ")
    assert b"11010519491231002X" not in error


async def test_a_handler_that_fails_once_succeeds_on_retry_without_a_dead_letter() -> None:
    [stored] = await recorded(InMemoryEventStore(), "s", 1)
    effects, dlq = Effects(failures=1), InMemoryDeadLetters()
    assert await consumer(effects, dlq).process(incoming(stored)) is Outcome.APPLIED
    assert (effects.applied, dlq.published) == ([1], [])


# What asyncpg raises while PostgreSQL is down or restarting (SQLSTATE 57P01-57P03 included).
DATABASE_OUTAGES = [
    ConnectionRefusedError("db down"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.InternalClientError("unexpected message during a restart"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
]


@pytest.mark.parametrize("outage", DATABASE_OUTAGES, ids=lambda e: type(e).__name__)
async def test_a_database_outage_is_raised_for_redelivery_not_dead_lettered(
    outage: Exception,
) -> None:
    [stored] = await recorded(InMemoryEventStore(), "s", 1)

    async def unreachable(conn: Any, envelope: Envelope, data: dict[str, Any]) -> None:
        raise outage

    dlq = InMemoryDeadLetters()
    subject = InboxConsumer("v", unreachable, InMemoryInbox(), dlq, retry_delay_s=0)
    with pytest.raises(type(outage)):
        await subject.process(incoming(stored))
    assert dlq.published == []


# ------------------------------------------------------------------------------------ relay


class FakeProducer:
    def __init__(self, log: list[tuple[str, bytes, dict[str, bytes]]], fail_at: int | None) -> None:
        self.log, self.fail_at = log, fail_at
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(
        self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail_at is not None and len(self.log) == self.fail_at:
            future.set_exception(ConnectionError("broker gone"))
        else:
            self.log.append((topic, key, dict(headers)))
            future.set_result(None)
        return future


async def test_relay_publishes_in_global_order_and_checkpoints_after_the_broker_acknowledged() -> (
    None
):
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpoints()
    for stream in ("a", "b", "c"):
        await store.append(stream, NO_STREAM, [event(1), event(2)])
    sent: list[tuple[str, bytes, dict[str, bytes]]] = []
    producers: list[FakeProducer] = []

    def factory() -> FakeProducer:
        producers.append(FakeProducer(sent, fail_at=3 if not producers else None))
        return producers[-1]

    relay = OutboxRelay(store, checkpoints, "binding", factory, batch_size=4)

    with pytest.raises(ConnectionError):
        await relay.run_once()
    assert checkpoints.positions == {}  # nothing acknowledged as a whole: no checkpoint
    assert producers[0].stopped  # the failed producer is dropped

    assert await relay.run_once() == 4
    assert await relay.run_once() == 2
    assert await relay.run_once() == 0
    all_events = [e async for e in store.read_all()]
    assert checkpoints.positions == {"relay:qinqing.binding.v1": all_events[-1].position}
    # 3 sent before the failure, then everything again from the checkpoint.
    ids = [h["ce_id"].decode() for _, _, h in sent]
    assert ids[3:] == [str(e.event_id) for e in all_events]
    assert {topic for topic, _, _ in sent} == {"qinqing.binding.v1"}
    assert relay.published == 6


async def test_relay_run_stops_when_asked_and_closes_its_producer() -> None:
    store = InMemoryEventStore()
    await store.append("a", NO_STREAM, [event(1)])
    sent: list[tuple[str, bytes, dict[str, bytes]]] = []
    producer = FakeProducer(sent, None)
    relay = OutboxRelay(
        store, InMemoryCheckpoints(), "binding", lambda: producer, poll_interval_s=0.01
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    for _ in range(200):
        if sent:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert producer.stopped
    assert json.loads(sent[0][2]["ce_streamversion"]) == 1


# ------------------------------------------------------------------------ kafka projections
class Seen:
    """A projection that remembers what it saw of each event."""

    name = "seen"
    tables = ()

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    async def apply(self, conn: Any, event: EventRecord) -> None:
        identity = (event.event_id, event.stream_id, event.stream_version, event.type)
        self.rows.append((*identity, event.schema_version, event.occurred_at, event.data))
        self.rows.append(tuple(sorted(event.metadata.items())))


async def test_a_kafka_fed_projection_sees_the_event_as_the_producer_stored_it() -> None:
    [stored] = await recorded(InMemoryEventStore(), "family-1", 1)
    projection, inbox = Seen(), InMemoryInbox()
    subject = kafka_projection(projection, inbox, InMemoryDeadLetters())

    assert await subject.process(incoming(stored)) is Outcome.APPLIED
    assert await subject.process(incoming(stored, offset=1)) is Outcome.DUPLICATE
    identity = (stored.event_id, "family-1", 1, "MemberBound")
    assert projection.rows == [
        (*identity, 1, stored.occurred_at, stored.data),
        tuple(sorted(stored.metadata.items())),
    ]
