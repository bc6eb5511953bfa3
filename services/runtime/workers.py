"""A service process's background work: the outbox relay, the sealer and the service's own
timers and projections, run until stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
from faststream.kafka import KafkaBroker

from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.consumer import InboxConsumer
from services.runtime.decider import CommandContext
from services.runtime.integrity import Sealer
from services.runtime.logging import get_logger
from services.runtime.pgstore import PostgresEventStore
from services.runtime.relay import (
    UNAVAILABLE,
    OutboxRelay,
    ProducerSettings,
    kafka_producer,
    wait_or_stop,
)
from services.runtime.settings import Settings
from services.runtime.topics import ensure_topics

log = get_logger(__name__)


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


async def seal_until(sealer: Sealer, stop: asyncio.Event, interval_s: float) -> None:
    """Seal what committed, every `interval_s`, until `stop` is set."""
    while not stop.is_set():
        try:
            await sealer.seal_once()
        except UNAVAILABLE as exc:  # the next round tries again
            log.warning("sealing paused", schema=sealer.schema, error_type=type(exc).__name__)
        await wait_or_stop(stop, interval_s)


Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def periodic(tick: Callable[[], Awaitable[object]], interval_s: float, what: str) -> Job:
    """A job running `tick` every `interval_s` until stopped; a database or broker outage
    skips one round (logged) and the next round tries again."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await wait_or_stop(stop, interval_s)
            if stop.is_set():
                return
            try:
                await tick()
            except UNAVAILABLE as exc:
                log.warning(f"{what} paused", error_type=type(exc).__name__)

    return run


def utc_now() -> datetime:
    """The services' clock (commands take their time from it, never the domain)."""
    return datetime.now(UTC)


def timer(
    tick: Callable[[CommandContext], Awaitable[object]],
    interval_s: float,
    name: str,
    actor: str,
) -> Job:
    """A periodic job sending `tick` a fresh command context (correlation id `name`)."""

    async def once() -> None:
        await tick(CommandContext(uuid4(), utc_now(), name, actor))

    return periodic(once, interval_s, name)


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        log.error("background work stopped", task=task.get_name(), error_type=type(error).__name__)


@asynccontextmanager
async def background(
    settings: Settings,
    pool: asyncpg.Pool,
    schema: str,
    service: str,
    *,
    seal_every_s: float = 5.0,
    more: Mapping[str, Job] | None = None,
) -> AsyncIterator[None]:
    """Run the relay and the sealer of `schema`, and `more` jobs (timers, projection runners),
    while the block runs; stop them on the way out."""
    stop = asyncio.Event()
    jobs: dict[str, Coroutine[Any, Any, None]] = {
        "relay": outbox_relay(settings, pool, schema, service).run(stop),
        "sealer": seal_until(Sealer(pool, schema), stop, seal_every_s),
        **{name: job(stop) for name, job in (more or {}).items()},
    }
    tasks = [asyncio.create_task(job, name=f"{schema}:{name}") for name, job in jobs.items()]
    for task in tasks:
        task.add_done_callback(_report_failure)
    try:
        yield
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        for task in (*done, *pending):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@asynccontextmanager
async def serving(
    settings: Settings,
    pool: asyncpg.Pool,
    schema: str,
    service: str,
    broker: KafkaBroker,
    *,
    consumers: Mapping[str, InboxConsumer],
    jobs: Mapping[str, Job],
) -> AsyncIterator[None]:
    """A service's whole background while the block runs: each consumer subscribed to its
    source service's topic (group `<namespace>.<name>`), the relay, the sealer and `jobs`, the
    topics made, the broker started; everything stopped on the way out."""
    for source, consumer in consumers.items():
        group = settings.group_id(consumer.name)
        consumer.subscribe(broker, settings.topic(source), group_id=group)
    async with background(settings, pool, schema, service, more=jobs):
        topics = [settings.topic(s) for s in (service, *consumers)]
        await ensure_topics(settings.kafka_bootstrap_servers, topics)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
