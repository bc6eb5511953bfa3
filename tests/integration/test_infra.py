"""The real infrastructure answers: PostgreSQL >= 15, a Kafka round-trip, a broker crash."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from services.runtime import infra as local_infra

from ..conftest import LocalBroker


async def test_postgres_answers(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert conn.get_server_version().major >= 15
        assert await conn.fetchval("SHOW fsync") == "on"
    finally:
        await conn.close()


async def test_pool_and_schema_fixtures(db_pool: asyncpg.Pool, pg_schema: str) -> None:
    async with db_pool.acquire() as conn:
        await conn.execute(f'CREATE SCHEMA "{pg_schema}"')
        await conn.execute(f'CREATE TABLE "{pg_schema}".t (id int)')
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", pg_schema)
            == 1
        )


async def _consume_one(bootstrap: str, topic: str, timeout_s: float = 30.0) -> ConsumerRecord:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(timeout_s):
            return await consumer.getone()
    finally:
        await consumer.stop()


async def _round_trip(bootstrap: str, topic: str) -> None:
    key = uuid.uuid4().bytes
    value = f"hello {uuid.uuid4()}".encode()
    headers = [("ce_type", b"qinqing.test"), ("trace", uuid.uuid4().bytes)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    record = await _consume_one(bootstrap, topic)
    assert (record.key, record.value) == (key, value)
    assert list(record.headers) == headers
    assert (record.partition, record.offset) == (meta.partition, meta.offset)


async def test_kafka_round_trip(kafka_bootstrap: str, unique_topic: Callable[[str], str]) -> None:
    await _round_trip(kafka_bootstrap, unique_topic("infra.roundtrip"))


async def test_broker_survives_kill_and_restart(
    local_broker: LocalBroker, unique_topic: Callable[[str], str]
) -> None:
    before = unique_topic("infra.before-crash")
    await _round_trip(local_broker.bootstrap, before)

    pid = local_broker.kill()
    assert local_infra.kafka_pid() is None
    assert not await local_infra.kafka_answers(local_broker.bootstrap, timeout_s=1.0)

    started = time.monotonic()
    new_pid = await local_broker.start()
    assert new_pid != pid
    assert time.monotonic() - started < 90

    # The data written before the crash survived, and the broker takes new writes.
    await _round_trip(local_broker.bootstrap, unique_topic("infra.after-crash"))
