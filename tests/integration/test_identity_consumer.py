"""Identity's consumer of binding's MemberBindRequested on the real PostgreSQL and Kafka: the
face check the request needs is opened once, published by the relay; none when none is needed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from services.identity.consumers import bind_request_consumer
from services.identity.face_check import FaceCheckRequested
from services.identity.face_provider import FaceSimulator, SimulatedOutcome
from services.identity.handlers import FACE_CHECK_CODEC, IdentityDeps, IdentityHandlers
from services.identity.password_hashing import make_hasher
from services.identity.tables import PostgresIdentityTables
from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.consumer import (
    BrokerDeadLetters,
    InboxConsumer,
    IncomingMessage,
    InMemoryDeadLetters,
    Outcome,
    PostgresInbox,
)
from services.runtime.decider import CommandContext
from services.runtime.events import RecordedEvent
from services.runtime.kafka_codec import KafkaRecord, to_record
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pgstore import PostgresEventStore
from services.runtime.pii import PostgresKeyVault
from services.runtime.relay import OutboxRelay, ProducerSettings, kafka_producer
from tests.builders import recorded_event
from tests.integration.test_messaging import create_topics, read_topic, wait_for

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 25)
PEOPLE = {  # name, ID number of each person the tests register
    "holder": ("王芳", "360426199101010047"),
    "member": ("王建国", "360426198504130030"),
    "mother": ("刘静", "360426198505140046"),
}


def now() -> datetime:
    return datetime.now(UTC)


def ctx() -> CommandContext:
    return CommandContext(uuid4(), now(), f"corr-{uuid4().hex[:8]}", "test")


@pytest.fixture
async def app(db_pool: asyncpg.Pool, pg_schema: str) -> IdentityHandlers:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("identity"))
    return IdentityHandlers(
        IdentityDeps(
            PostgresEventStore(db_pool, pg_schema),
            PostgresKeyVault(db_pool, pg_schema, master_key=b"M" * 32),
            PostgresIdentityTables(db_pool, pg_schema),
            b"L" * 32,
            make_hasher(),
            FaceSimulator(now, SimulatedOutcome(answers=False)),
        )
    )


async def register(app: IdentityHandlers) -> dict[str, str]:
    return {
        role: await app.register_person(name, number, "360100", TODAY, ctx())
        for role, (name, number) in PEOPLE.items()
    }


async def binding_event(type_: str, data: dict[str, Any]) -> RecordedEvent:
    """An event as binding's store would record it (the relay's input)."""
    meta = {"correlation_id": "corr-bind", "actor": data.get("holder", "binding")}
    return recorded_event(f"holder-{uuid4().hex[:8]}", type_, data, at=now(), metadata=meta)


def bind_requested(people: dict[str, str], who: str, **over: Any) -> dict[str, Any]:
    subject = None if who == "none" else people.get(who, people["member"])
    return {
        "request_id": f"req-{uuid4().hex[:8]}",
        "holder": people["holder"],
        "member": people["member"],
        "kind": "family_account",
        "method": {"mother": "birth_certificate", "none": "proxy_without_id"}.get(who, "id_number"),
        "face_check": {"who": who, "subject": subject},
        "deadline": (now() + timedelta(days=3)).isoformat(),
    } | over


def message(record: KafkaRecord, offset: int = 0) -> IncomingMessage:
    return IncomingMessage(
        "qinqing.binding.v1", 0, offset, record.key, record.value, record.headers
    )


async def face_checks(app: IdentityHandlers, schema: str) -> list[FaceCheckRequested]:
    pool = cast(asyncpg.Pool, cast(PostgresEventStore, app.deps.store).pool)
    rows = await pool.fetch(
        f"SELECT stream_id FROM {schema}.events WHERE event_type = 'FaceCheckRequested'"
        " ORDER BY stream_id"
    )
    found = []
    for row in rows:
        (first, *_) = await app.deps.store.read_stream(row["stream_id"])
        event = FACE_CHECK_CODEC.decode(first)
        assert isinstance(event, FaceCheckRequested)
        found.append(event)
    return found


def is_check(check_id: str) -> Callable[[list[Any]], bool]:
    return lambda records: any(r.key == f"face-{check_id}".encode() for r in records)


async def test_bind_request_from_kafka_opens_the_members_face_check_once_and_it_is_published(
    app: IdentityHandlers, db_pool: asyncpg.Pool, pg_schema: str, kafka_bootstrap: str
) -> None:
    people = await register(app)
    request = bind_requested(people, "member")
    wanted = to_record(await binding_event("MemberBindRequested", request), "binding")
    no_face = to_record(
        await binding_event("MemberBindRequested", bind_requested(people, "none")), "binding"
    )
    other = to_record(await binding_event("MemberBound", {"request_id": "r"}), "binding")
    topic = f"qinqing.binding.v1.{pg_schema}"
    await create_topics(kafka_bootstrap, topic, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        # The second one is a redelivery; `other` is a type identity passes by.
        for record in (wanted, wanted, other, no_face):
            await producer.send_and_wait(topic, record.value, record.key, headers=record.headers)
    finally:
        await producer.stop()

    broker = KafkaBroker(kafka_bootstrap)
    inbox = PostgresInbox(db_pool, pg_schema)
    consumer = bind_request_consumer(app, inbox, BrokerDeadLetters(broker), now)
    consumer.subscribe(broker, topic, group_id=f"g-{pg_schema}")
    last_id, other_id = (UUID(dict(r.headers)["ce_id"].decode()) for r in (no_face, other))

    async def in_inbox(event_id: UUID) -> bool:
        seen = await db_pool.fetchval(
            f"SELECT count(*) FROM {pg_schema}.inbox WHERE event_id = $1", event_id
        )
        return bool(seen)

    async def all_seen() -> bool:
        return await in_inbox(last_id)

    await broker.start()
    try:
        await wait_for(all_seen, 40, "the consumer to reach the last record")
    finally:
        await broker.stop()

    (check,) = await face_checks(app, pg_schema)
    assert (check.purpose, check.subject, check.on_behalf_of, check.correlation_id) == (
        "member_binding",
        people["member"],
        people["holder"],
        request["request_id"],
    )
    assert await inbox_count(db_pool, pg_schema) == 2  # the request (once) and the one without
    assert not await in_inbox(other_id)  # passed by: no transaction for it
    # Delivered once more (a consumer restarted before its offset was committed): nothing new.
    assert await consumer.process(message(wanted)) is Outcome.DUPLICATE
    assert len(await face_checks(app, pg_schema)) == 1

    relay = OutboxRelay(
        app.deps.store,
        PostgresCheckpoints(db_pool, pg_schema),
        "identity",
        lambda: kafka_producer(ProducerSettings(kafka_bootstrap, request_timeout_ms=10_000)),
    )
    try:
        assert await relay.run_once() == 4  # three registrations, one face check
    finally:
        await relay.close()
    published = await read_topic(kafka_bootstrap, relay.topic, is_check(check.check_id), 30)
    (record,) = [r for r in published if r.key == f"face-{check.check_id}".encode()]
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["ce_type"] == "qinqing.identity.FaceCheckRequested.v1"
    assert headers["ce_causationid"] == dict(wanted.headers)["ce_id"].decode()


async def inbox_count(pool: asyncpg.Pool, schema: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {schema}.inbox"))


def consumer_for(app: IdentityHandlers, pool: asyncpg.Pool, schema: str) -> InboxConsumer:
    return bind_request_consumer(app, PostgresInbox(pool, schema), InMemoryDeadLetters(), now)


async def test_a_newborn_by_birth_certificate_opens_the_mothers_check_for_the_holder(
    app: IdentityHandlers, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    people = await register(app)
    consumer = consumer_for(app, db_pool, pg_schema)
    record = to_record(
        await binding_event("MemberBindRequested", bind_requested(people, "mother")), "binding"
    )
    assert await consumer.process(message(record)) is Outcome.APPLIED
    (check,) = await face_checks(app, pg_schema)
    assert (check.purpose, check.subject, check.on_behalf_of) == (
        "newborn_mother",
        people["mother"],
        people["holder"],
    )


async def test_a_mother_binding_her_own_newborn_requests_her_own_face_check(
    app: IdentityHandlers, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    people = await register(app)
    mother = {"who": "mother", "subject": people["holder"]}
    mine = bind_requested(people, "mother", face_check=mother)
    record = to_record(await binding_event("MemberBindRequested", mine), "binding")
    assert await consumer_for(app, db_pool, pg_schema).process(message(record)) is Outcome.APPLIED
    (check,) = await face_checks(app, pg_schema)
    assert (check.subject, check.on_behalf_of) == (people["holder"], people["holder"])


async def test_a_request_past_its_deadline_or_needing_no_face_opens_no_check(
    app: IdentityHandlers, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    people = await register(app)
    consumer = consumer_for(app, db_pool, pg_schema)
    past = bind_requested(people, "member", deadline=(now() - timedelta(minutes=1)).isoformat())
    for data in (past, bind_requested(people, "none")):
        record = to_record(await binding_event("MemberBindRequested", data), "binding")
        assert await consumer.process(message(record)) is Outcome.APPLIED
    assert await face_checks(app, pg_schema) == []


async def test_a_request_for_an_unregistered_person_is_dead_lettered(
    app: IdentityHandlers, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    people = await register(app)
    dead = InMemoryDeadLetters()
    consumer = InboxConsumer(
        "identity.bind-requests",
        consumer_for(app, db_pool, pg_schema).handler,
        PostgresInbox(db_pool, pg_schema),
        dead,
        retry_delay_s=0.001,
    )
    unknown = bind_requested(people, "member", face_check={"who": "member", "subject": "p-nobody"})
    record = to_record(await binding_event("MemberBindRequested", unknown), "binding")
    assert await consumer.process(message(record)) is Outcome.DEAD_LETTERED
    assert [topic for topic, *_ in dead.published] == ["qinqing.binding.v1.dlq"]
    assert await inbox_count(db_pool, pg_schema) == 0
