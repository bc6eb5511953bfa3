"""Phase 2: `OutboxRelay` publishing a backlog against Kafka's `ProducerPerformance`."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from typing import Any

import asyncpg

from services.bench.common import STREAM_TYPES, BenchConfig, BenchError, Say, figure, now, pad, rate
from services.bench.kafka import producer_perf
from services.runtime.events import NewEvent
from services.runtime.pgstore import PostgresEventStore
from services.runtime.settings import Settings
from services.runtime.topics import delete_topics, ensure_topics
from services.runtime.workers import outbox_relay

LOAD_WRITERS = 4


async def load_events(
    store: PostgresEventStore, count: int, cfg: BenchConfig, offset: int = 0
) -> float:
    """Append `count` ~1 KB events in `load_batch`-event commands, `LOAD_WRITERS` writers.

    Returns the seconds it took.
    """
    streams = max(1, count // cfg.load_batch)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for s in range(streams):
        queue.put_nowait(s)
    per_stream = [count // streams + (1 if s < count % streams else 0) for s in range(streams)]

    async def writer() -> None:
        while not queue.empty():
            s = queue.get_nowait()
            stream_id = f"{STREAM_TYPES[s % len(STREAM_TYPES)]}-load{offset}-{s}"
            events = [
                NewEvent(
                    "bench.Recorded",
                    pad(cfg.relay_payload_bytes, i),
                    now(),
                    metadata={"correlation_id": str(uuid.uuid4())},
                )
                for i in range(per_stream[s])
            ]
            await store.append(stream_id, 0, events, command_id=uuid.uuid4())

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(LOAD_WRITERS)))
    return time.perf_counter() - started


class _RelayHarness:
    """One OutboxRelay (production settings: batch size from Settings, acks=all) kept warm."""

    def __init__(self, pool: asyncpg.Pool, schema: str, service: str, settings: Settings) -> None:
        self.relay = outbox_relay(settings, pool, schema, service)
        self.topic: str = self.relay.topic

    async def publish(self, total: int, timeout_s: float) -> tuple[int, float, float]:
        """Run the relay until it has published `total` events: (events, seconds, CPU seconds)."""
        before = self.relay.published
        cpu_started = time.process_time()
        started = time.perf_counter()
        deadline = started + timeout_s
        while self.relay.published < total:
            if await self.relay.run_once() == 0:
                # Caught up with what is visible: another session's open transaction holds
                # the read horizon back. Wait for it rather than count the gap as work.
                if time.perf_counter() > deadline:
                    raise BenchError(
                        f"relay published {self.relay.published} of {total} events in "
                        f"{timeout_s:.0f} s"
                    )
                await asyncio.sleep(0.01)
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        return self.relay.published - before, seconds, cpu_s

    async def close(self) -> None:
        await self.relay.close()


async def relay_figure(
    pool: asyncpg.Pool, schema: str, cfg: BenchConfig, settings: Settings, say: Say
) -> tuple[dict[str, Any], float]:
    """Returns the figure and the seconds spent loading its backlog into `schema`."""
    store = PostgresEventStore(pool, schema)
    bootstrap = settings.kafka_bootstrap_servers
    say(f"relay: loading {cfg.relay_warmup_events:,} warm-up events")
    await load_events(store, cfg.relay_warmup_events, cfg, offset=0)
    harness = _RelayHarness(pool, schema, schema, settings)  # service = schema: a fresh topic
    perf_topic = f"{schema}.producer_perf"
    topics = [harness.topic, perf_topic]
    try:
        await ensure_topics(bootstrap, topics, cfg.topic_partitions)
    except Exception as exc:
        raise BenchError(f"Kafka at {bootstrap}: cannot create topics ({exc})") from exc
    perf_runs: list[dict[str, float]] = []

    async def ceiling() -> None:
        say(f"relay: ProducerPerformance, {cfg.producer_perf_records:,} records of 1024 B")
        run = await asyncio.to_thread(
            producer_perf, bootstrap, perf_topic, cfg.producer_perf_records
        )
        perf_runs.append(run)
        say(f"relay: ProducerPerformance {run['records_per_s']:,.0f} records/s")

    try:
        if cfg.producer_perf_runs > 1:
            await ceiling()
        say("relay: warm-up (publishing the warm-up events)")
        await harness.publish(cfg.relay_warmup_events, cfg.relay_timeout_s)
        say(f"relay: loading a backlog of {cfg.relay_events:,} events")
        load_s = await load_events(store, cfg.relay_events, cfg, offset=1)
        say(f"relay: backlog loaded in {load_s:.1f} s; publishing it")
        published, seconds, cpu_s = await harness.publish(
            cfg.relay_warmup_events + cfg.relay_events, cfg.relay_timeout_s
        )
        relay_rate = rate(published, seconds)
        # Stop the relay's producer before the ceiling runs, so the two do not share the broker.
        await harness.close()
        say(f"relay: {relay_rate:,.0f} events/s")
        await ceiling()
    finally:
        await harness.close()
        with contextlib.suppress(Exception):
            await delete_topics(bootstrap, topics)
    relay = _figure(
        cfg, settings, relay_rate=relay_rate, published=published, seconds=seconds, cpu_s=cpu_s,
        perf_runs=perf_runs,
    )  # fmt: skip
    return relay, load_s


def _figure(
    cfg: BenchConfig,
    settings: Settings,
    *,
    relay_rate: float,
    published: int,
    seconds: float,
    cpu_s: float,
    perf_runs: list[dict[str, float]],
) -> dict[str, Any]:
    # The relay ran once, between the ceiling's runs: compare with their mean, so that drift
    # of a noisy machine during the phase weighs on both sides alike.
    perf_rate = statistics.fmean(run["records_per_s"] for run in perf_runs)
    return figure(
        (relay_rate, perf_rate),
        key="relay_vs_producer_perf",
        definition=(
            "events/s published by services.runtime.relay.OutboxRelay (acks=all, idempotent, "
            f"batch size {settings.relay_batch_size}) from a backlog of events with "
            f"{cfg.relay_payload_bytes} B of data JSON (~1 KB records) / records/s of Kafka's "
            "ProducerPerformance (1024 B records, acks=all, unthrottled; mean of its runs before "
            "and after the relay's); same broker, fresh topics with the same partition count"
        ),
        relay_events_per_s=round(relay_rate, 1),
        relay_events=published,
        relay_seconds=round(seconds, 3),
        relay_client_cpu_us_per_event=round(cpu_s / published * 1e6, 1),
        producer_perf_records_per_s=round(perf_rate, 1),
        producer_perf_last_run=perf_runs[-1],
        producer_perf_runs=[run["records_per_s"] for run in perf_runs],
        topic_partitions=cfg.topic_partitions,
    )
