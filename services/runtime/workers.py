"""A service process's background work: the outbox relay, the sealer and the service's own
timers and projections, run until stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
from faststream.kafka import KafkaBroker

from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.consumer import InboxConsumer
from services.runtime.db import database_ready
from services.runtime.decider import CommandContext
from services.runtime.integrity import Sealer
from services.runtime.pgstore import PostgresEventStore
from services.runtime.relay import OutboxRelay, ProducerSettings, kafka_producer
from services.runtime.settings import Settings
from services.runtime.supervisor import Round, Supervisor
from services.runtime.topics import ensure_topics


def outbox_relay(settings: Settings, pool: asyncpg.Pool, schema: str, service: str) -> OutboxRelay:
    """The relay of one service's log to `qinqing.<service>.v1`, as every service runs it."""
    producer = ProducerSettings(bootstrap_servers=settings.kafka_bootstrap_servers)
    return OutboxRelay(
        PostgresEventStore(pool, schema),
        PostgresCheckpoints(pool, schema),
        service,
        lambda: kafka_producer(producer),
        batch_size=settings.relay_batch_size,
        topic=settings.topic(service),
    )


def sealing(sealer: Sealer, interval_s: float) -> Round:
    """Seal what committed, every `interval_s`."""

    async def seal() -> float:
        await sealer.seal_once()
        return interval_s

    return seal


def utc_now() -> datetime:
    """The services' clock (commands take their time from it, never the domain)."""
    return datetime.now(UTC)


def timer(
    tick: Callable[[CommandContext], Awaitable[object]],
    interval_s: float,
    name: str,
    actor: str,
) -> Round:
    """A job sending `tick` a fresh command context (correlation id `name`) every
    `interval_s`, the first time at start-up (what fell due while the service was away)."""

    async def once() -> float:
        await tick(CommandContext(uuid4(), utc_now(), name, actor))
        return interval_s

    return once


@asynccontextmanager
async def background(
    settings: Settings,
    pool: asyncpg.Pool,
    schema: str,
    service: str,
    *,
    seal_every_s: float = 5.0,
    more: Mapping[str, Round] | None = None,
) -> AsyncIterator[Supervisor]:
    """Run the relay and the sealer of `schema`, and `more` jobs (timers, projection rounds),
    under one supervisor while the block runs (it tells which jobs are down); stop them on the
    way out."""
    stop, work = asyncio.Event(), Supervisor()
    relay = outbox_relay(settings, pool, schema, service)
    jobs = {"sealer": sealing(Sealer(pool, schema), seal_every_s), **(more or {})}
    tasks = [asyncio.create_task(relay.run(stop, work), name=f"{schema}:relay")] + [
        asyncio.create_task(work.keep(f"{schema}:{name}", job, stop), name=f"{schema}:{name}")
        for name, job in jobs.items()
    ]
    try:
        yield work
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        for task in (*done, *pending):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def readiness(pool: asyncpg.Pool, table: str, work: Supervisor) -> Callable[[], Awaitable[bool]]:
    """What `/readyz` reports: the database answers, the service's schema is migrated
    (`table`, schema-qualified, exists) and none of its background work is down."""

    async def ready() -> bool:
        return work.healthy and await database_ready(pool, table)

    return ready


@asynccontextmanager
async def serving(
    settings: Settings,
    pool: asyncpg.Pool,
    schema: str,
    service: str,
    broker: KafkaBroker,
    *,
    consumers: Mapping[str, InboxConsumer],
    jobs: Mapping[str, Round],
) -> AsyncIterator[Supervisor]:
    """A service's whole background while the block runs: each consumer subscribed to its
    source service's topic (group `<namespace>.<name>`), the relay, the sealer and `jobs`, the
    topics made, the broker started; everything stopped on the way out. Yields the jobs'
    supervisor."""
    for source, consumer in consumers.items():
        group = settings.group_id(consumer.name)
        consumer.subscribe(broker, settings.topic(source), group_id=group)
    async with background(settings, pool, schema, service, more=jobs) as work:
        topics = [settings.topic(s) for s in (service, *consumers)]
        await ensure_topics(settings.kafka_bootstrap_servers, topics)
        await broker.start()
        try:
            yield work
        finally:
            await broker.stop()
