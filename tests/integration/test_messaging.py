"""Relay, inbox consumer and dead letters on the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cloudevents.core.bindings import kafka as ce_kafka
from faststream.kafka import KafkaBroker

from contracts.envelope import Envelope, dead_letter_topic
from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.consumer import BrokerDeadLetters, InboxConsumer, PostgresInbox
from services.runtime.events import NO_STREAM, NewEvent
from services.runtime.kafka_codec import from_record, to_record
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pgstore import PostgresEventStore
from services.runtime.relay import OutboxRelay, ProducerSettings, kafka_producer
from services.runtime.topics import ensure_topics
from tests.conftest import LocalBroker

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
META = {"correlation_id": "corr-9", "causation_id": "cmd-9", "actor": "holder:p-1"}


def ev(n: int) -> NewEvent:
    return NewEvent("MemberBound", {"n": n}, T0, metadata=META)


@pytest.fixture
async def store(db_pool: asyncpg.Pool, pg_schema: str) -> PostgresEventStore:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("binding"))
        await conn.execute(
            f"CREATE TABLE {pg_schema}.effects"
            " (event_id uuid NOT NULL, stream_id text NOT NULL, version int NOT NULL)"
        )
    return PostgresEventStore(db_pool, pg_schema)


@pytest.fixture
def service(pg_schema: str) -> str:
    """A service name per test, so its topic `qinqing.<service>.v1` is fresh."""
    return pg_schema


def relay_for(store: PostgresEventStore, service: str, bootstrap: str, **kw: Any) -> OutboxRelay:
    settings = ProducerSettings(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    return OutboxRelay(
        store,
        PostgresCheckpoints(cast(asyncpg.Pool, store.pool), store.schema),
        service,
        lambda: kafka_producer(settings),
        **kw,
    )


def effect_writer(
    schema: str,
) -> Callable[[asyncpg.Connection, Envelope, dict[str, Any]], Awaitable[None]]:
    async def handler(conn: asyncpg.Connection, envelope: Envelope, data: dict[str, Any]) -> None:
        if data.get("n", 0) < 0:
            raise ValueError(f"refusing n={data['n']}")
        await conn.execute(
            f"INSERT INTO {schema}.effects VALUES ($1, $2, $3)",
            envelope.id,
            envelope.streamid,
            envelope.streamversion,
        )

    return handler


async def create_topics(bootstrap: str, *names: str, partitions: int = 3) -> None:
    await ensure_topics(bootstrap, names, partitions)


async def read_topic(
    bootstrap: str, topic: str, until: Callable[[list[Any]], bool], timeout_s: float
) -> list[Any]:
    """Every record of `topic` from the start, until `until(records)` holds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.2)


# ----------------------------------------------------------------------------------- tests


async def test_relay_records_read_by_the_cloudevents_sdk_match_our_parser(
    store: PostgresEventStore, service: str, kafka_bootstrap: str
) -> None:
    for s in range(3):
        await store.append(f"family-{s}", NO_STREAM, [ev(1), ev(2)])
    relay = relay_for(store, service, kafka_bootstrap)
    try:
        assert await relay.run_once() == 6
    finally:
        await relay.close()

    records = await read_topic(kafka_bootstrap, relay.topic, lambda r: len(r) >= 6, 30)
    assert len(records) == 6
    for record in records:
        ours, data = from_record(record.headers, record.value)
        sdk = ce_kafka.from_binary_event(
            ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
        )
        assert sdk.get_id() == str(ours.id)
        assert sdk.get_type() == ours.type == "qinqing." + service + ".MemberBound.v1"
        assert sdk.get_source() == ours.source == f"/qinqing/{service}"
        assert sdk.get_subject() == ours.subject == record.key.decode()
        assert sdk.get_time() == ours.time
        assert sdk.get_specversion() == "1.0"
        assert sdk.get_datacontenttype() == "application/json"
        assert sdk.get_data() == data
        for name in ("streamid", "globalposition", "correlationid", "causationid", "actor"):
            assert sdk.get_extension(name) == getattr(ours, name)
        assert int(sdk.get_extension("streamversion")) == ours.streamversion
        assert int(sdk.get_extension("schemaversion")) == ours.schemaversion
        assert sdk.get_extension("partitionkey") == ours.streamid


async def test_a_redelivered_message_has_one_effect_and_poison_goes_to_the_dead_letter_topic(
    store: PostgresEventStore, service: str, kafka_bootstrap: str
) -> None:
    topic = f"qinqing.{service}.v1"
    await create_topics(kafka_bootstrap, topic, partitions=1)
    await store.append("s", NO_STREAM, [ev(1), ev(-1), ev(3)])
    first, failing, last = await store.read_stream("s")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for stored in (first, first):
            r = to_record(stored, service)
            await producer.send_and_wait(topic, r.value, r.key, headers=r.headers)
        good_headers = to_record(first, service).headers
        await producer.send_and_wait(topic, b"{not json", b"s", headers=good_headers)
        for stored in (failing, last):
            r = to_record(stored, service)
            await producer.send_and_wait(topic, r.value, r.key, headers=r.headers)
    finally:
        await producer.stop()

    inbox = PostgresInbox(cast(asyncpg.Pool, store.pool), store.schema)
    broker = KafkaBroker(kafka_bootstrap)
    consumer = InboxConsumer(
        "effects", effect_writer(store.schema), inbox, BrokerDeadLetters(broker), retry_delay_s=0.01
    )
    consumer.subscribe(broker, topic, group_id=f"g-{service}")
    await broker.start()
    try:
        await wait_for(
            lambda: _count(store, "effects", 2), 40, "the two good events to take effect"
        )
        dead = await read_topic(
            kafka_bootstrap, dead_letter_topic(topic), lambda r: len(r) >= 2, 30
        )
    finally:
        await broker.stop()

    rows = await store.pool.fetch(f"SELECT event_id FROM {store.schema}.effects ORDER BY version")
    assert [r["event_id"] for r in rows] == [first.event_id, last.event_id]
    assert len(dead) == 2
    by_value = {d.value: {k: v.decode() for k, v in d.headers} for d in dead}
    assert "not JSON" in by_value[b"{not json"]["x-error"]
    assert by_value[b"{not json"]["x-error-type"].endswith("MalformedMessageError")
    assert by_value[b"{not json"]["x-original-offset"] == "2"
    handler_failure = by_value[failing.data_json.encode()]
    assert handler_failure["x-error"] == "refusing n=-1"
    assert handler_failure["x-error-type"] == "builtins.ValueError"
    assert handler_failure["x-original-topic"] == topic
    assert handler_failure["ce_id"] == str(failing.event_id)


async def _count(store: PostgresEventStore, table: str, at_least: int) -> bool:
    count = await store.pool.fetchval(f"SELECT count(*) FROM {store.schema}.{table}")
    return bool(count >= at_least)


async def test_kafka_crash_during_appends_loses_nothing_keeps_key_order_and_one_effect_each(
    store: PostgresEventStore, service: str, local_broker: LocalBroker
) -> None:
    bootstrap = local_broker.bootstrap
    topic = f"qinqing.{service}.v1"
    await create_topics(bootstrap, topic)
    streams, per_stream = 20, 50  # 1,000 events
    relay = relay_for(store, service, bootstrap, batch_size=100, poll_interval_s=0.02)
    stop = asyncio.Event()
    relay_task = asyncio.create_task(relay.run(stop))
    broker = KafkaBroker(bootstrap)
    consumer = InboxConsumer(
        "effects",
        effect_writer(store.schema),
        PostgresInbox(cast(asyncpg.Pool, store.pool), store.schema),
        BrokerDeadLetters(broker),
        retry_delay_s=0.01,
    )
    consumer.subscribe(broker, topic, group_id=f"g-{service}")
    await broker.start()

    async def writer(stream: int, versions: range) -> None:
        for version in versions:
            await store.append(f"family-{stream}", version - 1, [ev(version)])

    try:
        half = per_stream // 2
        await asyncio.gather(*(writer(s, range(1, half + 1)) for s in range(streams)))
        local_broker.kill()
        # Appends go on while Kafka is gone: the log is the outbox.
        await asyncio.gather(*(writer(s, range(half + 1, per_stream + 1)) for s in range(streams)))
        assert await store.pool.fetchval(f"SELECT count(*) FROM {store.schema}.events") == 1000
        await asyncio.sleep(2)
        await local_broker.start()
        await wait_for(lambda: _count(store, "effects", 1000), 90, "1,000 effects after restart")
        records = await read_topic(
            bootstrap, topic, lambda r: len({dict(x.headers)["ce_id"] for x in r}) >= 1000, 60
        )
        await asyncio.sleep(1)  # let any late duplicate reach the consumer
    finally:
        stop.set()
        await asyncio.wait_for(relay_task, 30)
        await broker.stop()

    # At least once, per-key order intact once duplicates (by event id) are dropped.
    seen: set[bytes] = set()
    versions: dict[bytes, list[int]] = defaultdict(list)
    for record in records:  # read_topic returns each partition's records in offset order
        headers = dict(record.headers)
        if headers["ce_id"] in seen:
            continue
        seen.add(headers["ce_id"])
        versions[record.key].append(int(headers["ce_streamversion"]))
    assert len(seen) == 1000
    assert {k: v for k, v in versions.items() if v != list(range(1, per_stream + 1))} == {}
    # Exactly one effect per event, whatever the redeliveries.
    rows = await store.pool.fetch(
        f"SELECT event_id, count(*) AS n FROM {store.schema}.effects GROUP BY event_id"
    )
    assert len(rows) == 1000
    assert all(r["n"] == 1 for r in rows)
    assert {UUID(i.decode()) for i in seen} == {r["event_id"] for r in rows}
