"""`qinqing bench`: ratios against raw ceilings, measured in one run on the real local stack.

Every figure is `ours / ceiling`, both measured here, seconds apart, on the same PostgreSQL
and the same Kafka broker, so the ratio says how much the runtime costs on top of what the
machine can do at all:

* `append_vs_raw_insert`: `PostgresEventStore.append` (8 writers, 1-event commands with a
  command id, each writer on its own streams; the per-stream hash chain is computed inside
  the store's `append_events()`) against plain single-row INSERTs of rows of the same columns
  and sizes into a plain table (same columns, defaults and primary key; no function, trigger,
  secondary index or command row) with the same 8-way concurrency. Runs alternate in rounds so
  that drift (checkpoints, autovacuum) hits both sides alike.
* `append_vs_raw_insert_batch10`: events/s of 10-event commands / the same raw rows/s.
* `relay_vs_producer_perf`: events/s the outbox relay publishes (acks=all) from a backlog of
  ~1 KB events / records/s of Kafka's own `ProducerPerformance` with 1 KB records, acks=all.
* `rebuild_vs_raw_read`: events/s of `ProjectionRunner.rebuild` of a small projection (events
  per stream type) / rows/s of a plain server-side-cursor read of the same rows in order.

Everything happens in a fresh `bench_<hex>` schema and fresh topics, dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import typer

from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.db import create_pool
from services.runtime.events import EventRecord, NewEvent
from services.runtime.infra import KafkaPaths, repo_root
from services.runtime.migrate import migrate, package_migrations
from services.runtime.pgstore import PostgresEventStore
from services.runtime.projection import ProjectionRunner
from services.runtime.relay import OutboxRelay, ProducerSettings, kafka_producer
from services.runtime.settings import Settings

Say = Callable[[str], None]

TARGETS = {
    "append_vs_raw_insert": 0.7,
    "append_vs_raw_insert_batch10": 0.7,
    "relay_vs_producer_perf": 0.5,
    "rebuild_vs_raw_read": 0.3,
}
FIGURES = tuple(TARGETS)

STREAM_TYPES = ("account", "binding", "voucher", "proxy")
_EVENT_COLUMNS = (
    "stream_id, stream_version, tx_id::text::bigint AS tx_id, seq, event_id, event_type,"
    " schema_version, data::text AS data, metadata::text AS metadata, occurred_at, recorded_at,"
    " content_hash, chain_hash"
)
_PERF_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\),"
    r" (?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency,"
    r" (?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


class BenchError(RuntimeError):
    """The benchmark could not run (infrastructure missing, a tool failed): names the cause."""


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one run; `FULL` fits ~3 minutes and `QUICK` ~45 s on 2 cores."""

    mode: str
    writers: int = 8
    warmup_s: float = 2.0
    phase_s: float = 6.0
    rounds: int = 4
    small_payload_bytes: int = 200  # data JSON of the append phase's events
    stream_length: int = 50  # events per stream before a writer moves to a new stream
    relay_payload_bytes: int = 1000  # data JSON of the relay/rebuild events (~1 KB record)
    relay_warmup_events: int = 2_000
    relay_events: int = 98_000  # backlog measured; warm-up + backlog = the rebuild's events
    load_batch: int = 100
    producer_perf_records: int = 150_000
    producer_perf_runs: int = 2  # before and after the relay; the best run is the ceiling
    topic_partitions: int = 3
    read_batch: int = 1_000
    read_repeats: int = 2
    relay_timeout_s: float = 120.0


FULL = BenchConfig(mode="full")
QUICK = replace(
    FULL,
    mode="quick",
    warmup_s=1.0,
    phase_s=2.0,
    rounds=2,
    relay_warmup_events=1_000,
    relay_events=19_000,
    producer_perf_records=40_000,
    producer_perf_runs=1,
    read_repeats=1,
    relay_timeout_s=60.0,
)


# --------------------------------------------------------------------------- helpers


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _percentiles_ms(samples: Sequence[float]) -> dict[str, float]:
    if len(samples) < 2:
        only = samples[0] * 1000 if samples else 0.0
        return {"p50": round(only, 3), "p99": round(only, 3)}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": round(cuts[49] * 1000, 3), "p99": round(cuts[98] * 1000, 3)}


def _figure(
    ratio_of: tuple[float, float], *, target: float, definition: str, **extra: Any
) -> dict[str, Any]:
    """`ratio` is ours / ceiling, both measured in this run."""
    if ratio_of[1] <= 0:
        raise BenchError(f"the ceiling measured nothing ({definition})")
    ratio = ratio_of[0] / ratio_of[1]
    return {
        "ratio": round(ratio, 3),
        "target": target,
        "meets_target": ratio >= target,
        "definition": definition,
        **extra,
    }


def _pad(size: int, n: int) -> dict[str, Any]:
    """A data payload whose canonical JSON is about `size` bytes."""
    base = {"n": n, "amount_cents": (n * 7919) % 1_000_000, "currency": "CNY", "memo": ""}
    overhead = len(json.dumps(base, separators=(",", ":")))
    base["memo"] = "m" * max(0, size - overhead)
    return base


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- phase 1: appends


@dataclass
class _Run:
    count: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time (the client side: asyncpg, hashing, JSON)
    latencies: list[float] = field(default_factory=list)

    def add(self, other: _Run) -> None:
        self.count += other.count
        self.seconds += other.seconds
        self.cpu_s += other.cpu_s
        self.latencies.extend(other.latencies)

    @property
    def client_cpu_per_item_us(self) -> float:
        return round(self.cpu_s / self.count * 1e6, 1) if self.count else 0.0


class _AppendPhase:
    """Store appends and raw INSERTs with the same writers, streams and row sizes."""

    def __init__(self, pool: asyncpg.Pool, schema: str, cfg: BenchConfig) -> None:
        self.pool, self.schema, self.cfg = pool, schema, cfg
        self.raw_sql = (
            f"INSERT INTO {schema}.raw_events (stream_id, stream_version, event_id, event_type,"
            " schema_version, data, metadata, occurred_at, content_hash, chain_hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )
        self._stream_seq = 0

    async def create_raw_table(self) -> None:
        # The same columns, types, defaults and primary key as `events`; nothing else.
        await self.pool.execute(
            f"CREATE TABLE {self.schema}.raw_events ("
            " seq bigserial NOT NULL, tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),"
            " stream_id text NOT NULL, stream_version integer NOT NULL, event_id uuid NOT NULL,"
            " event_type text NOT NULL, schema_version integer NOT NULL, data json NOT NULL,"
            " metadata json NOT NULL, occurred_at timestamptz NOT NULL,"
            " recorded_at timestamptz NOT NULL DEFAULT now(), content_hash bytea NOT NULL,"
            " chain_hash bytea NOT NULL, PRIMARY KEY (stream_id, stream_version))"
        )

    def _new_stream(self, kind: str, writer: int) -> str:
        self._stream_seq += 1
        prefix = STREAM_TYPES[self._stream_seq % len(STREAM_TYPES)]
        return f"{prefix}-{kind}{writer}-{self._stream_seq}"

    async def _store_writer(
        self,
        conn: asyncpg.pool.PoolConnectionProxy,
        writer: int,
        batch: int,
        deadline: float,
        run: _Run,
    ) -> None:
        store = PostgresEventStore(conn, self.schema)
        stream, version = self._new_stream(f"s{batch}w", writer), 0
        meta = {"correlation_id": str(uuid.uuid4()), "actor": f"bench-writer-{writer}"}
        while time.perf_counter() < deadline:
            events = [
                NewEvent(
                    "bench.Deposited",
                    _pad(self.cfg.small_payload_bytes, version + i),
                    _now(),
                    metadata=meta,
                )
                for i in range(batch)
            ]
            started = time.perf_counter()
            await store.append(stream, version, events, command_id=uuid.uuid4())
            run.latencies.append(time.perf_counter() - started)
            run.count += batch
            version += batch
            if version >= self.cfg.stream_length:
                stream, version = self._new_stream(f"s{batch}w", writer), 0

    async def _raw_writer(
        self, conn: asyncpg.pool.PoolConnectionProxy, writer: int, deadline: float, run: _Run
    ) -> None:
        stream, version = self._new_stream("rw", writer), 0
        meta = {"correlation_id": str(uuid.uuid4()), "actor": f"bench-writer-{writer}"}
        placeholder_hash = bytes(32)  # same size as a SHA-256; the ceiling computes nothing
        while time.perf_counter() < deadline:
            version += 1
            data = json.dumps(_pad(self.cfg.small_payload_bytes, version), separators=(",", ":"))
            started = time.perf_counter()
            await conn.execute(
                self.raw_sql,
                stream,
                version,
                uuid.uuid4(),
                "bench.Deposited",
                1,
                data,
                json.dumps(meta, separators=(",", ":")),
                _now(),
                placeholder_hash,
                placeholder_hash,
            )
            run.latencies.append(time.perf_counter() - started)
            run.count += 1
            if version >= self.cfg.stream_length:
                stream, version = self._new_stream("rw", writer), 0

    async def measure(self, kind: str, seconds: float) -> _Run:
        """`kind` is "raw", or "store1"/"store10" (events per command)."""
        runs = [_Run() for _ in range(self.cfg.writers)]
        cpu_started = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds
        # Both sides alike: each writer holds its own connection, no pool round trip per write.
        async with contextlib.AsyncExitStack() as stack:
            conns = [
                await stack.enter_async_context(self.pool.acquire())
                for _ in range(self.cfg.writers)
            ]
            cpu_started = time.process_time()
            started = time.perf_counter()
            deadline = started + seconds
            if kind == "raw":
                jobs = [self._raw_writer(c, w, deadline, runs[w]) for w, c in enumerate(conns)]
            else:
                batch = int(kind.removeprefix("store"))
                jobs = [
                    self._store_writer(c, w, batch, deadline, runs[w]) for w, c in enumerate(conns)
                ]
            await asyncio.gather(*jobs)
        total = _Run(seconds=time.perf_counter() - started, cpu_s=time.process_time() - cpu_started)
        for run in runs:
            total.count += run.count
            total.latencies.extend(run.latencies)
        return total


async def _append_figures(
    pool: asyncpg.Pool, schema: str, cfg: BenchConfig, say: Say
) -> dict[str, dict[str, Any]]:
    phase = _AppendPhase(pool, schema, cfg)
    await phase.create_raw_table()
    kinds = ("raw", "store1", "store10")
    say(f"appends: warm-up {cfg.warmup_s:.0f} s each for raw INSERT, 1-event and 10-event appends")
    for kind in kinds:
        await phase.measure(kind, cfg.warmup_s)
    totals = {kind: _Run() for kind in kinds}
    for round_no in range(1, cfg.rounds + 1):
        for kind in kinds:
            run = await phase.measure(kind, cfg.phase_s)
            totals[kind].add(run)
            say(
                f"appends: round {round_no}/{cfg.rounds} {kind:>7}: "
                f"{_rate(run.count, run.seconds):,.0f} {'rows' if kind == 'raw' else 'events'}/s"
            )
    raw, one, ten = totals["raw"], totals["store1"], totals["store10"]
    raw_rate = _rate(raw.count, raw.seconds)
    common: dict[str, Any] = {
        "writers": cfg.writers,
        "raw_insert_rows_per_s": round(raw_rate, 1),
        "raw_insert_latency_ms": _percentiles_ms(raw.latencies),
        "raw_insert_client_cpu_us_per_row": raw.client_cpu_per_item_us,
        "raw_rows": raw.count,
        "seconds_each": round(raw.seconds, 2),
        "data_json_bytes": cfg.small_payload_bytes,
    }
    one_rate, ten_rate = _rate(one.count, one.seconds), _rate(ten.count, ten.seconds)
    return {
        "append_vs_raw_insert": _figure(
            (one_rate, raw_rate),
            target=TARGETS["append_vs_raw_insert"],
            definition=(
                "events/s of PostgresEventStore.append (1-event commands with command ids, "
                f"{cfg.writers} concurrent writers on their own streams, each holding a "
                "connection, hash chain computed in append_events) / rows/s of plain single-row "
                "INSERTs of rows of the same columns "
                "and sizes into a plain table (same columns, defaults and primary key only) "
                f"through asyncpg, {cfg.writers} concurrent writers each holding a connection; "
                "phases alternate in rounds"
            ),
            append_events_per_s=round(one_rate, 1),
            append_latency_ms=_percentiles_ms(one.latencies),
            append_client_cpu_us_per_event=one.client_cpu_per_item_us,
            events=one.count,
            **common,
        ),
        "append_vs_raw_insert_batch10": _figure(
            (ten_rate, raw_rate),
            target=TARGETS["append_vs_raw_insert_batch10"],
            definition=(
                "events/s of PostgresEventStore.append with 10-event commands (same writers and "
                "settings) / rows/s of the same plain single-row INSERT ceiling"
            ),
            append_events_per_s=round(ten_rate, 1),
            append_commands_per_s=round(ten_rate / 10, 1),
            append_latency_ms=_percentiles_ms(ten.latencies),
            append_client_cpu_us_per_event=ten.client_cpu_per_item_us,
            events=ten.count,
            **common,
        ),
    }


# ----------------------------------------------------------------- data set for relay/rebuild


async def _load_events(
    store: PostgresEventStore, count: int, cfg: BenchConfig, offset: int = 0
) -> float:
    """Append `count` ~1 KB events in `load_batch`-event commands, 4 writers; returns seconds."""
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
                    _pad(cfg.relay_payload_bytes, i),
                    _now(),
                    metadata={"correlation_id": str(uuid.uuid4())},
                )
                for i in range(per_stream[s])
            ]
            await store.append(stream_id, 0, events, command_id=uuid.uuid4())

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(4)))
    return time.perf_counter() - started


# ----------------------------------------------------------------- phase 2: relay vs Kafka


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    return str(Path(home) / "bin" / "java") if home else "java"


def kafka_libs() -> Path:
    env = os.environ.get("QINQING_KAFKA_LIBS")
    return Path(env) if env else KafkaPaths.default().libs


def _kafka_version(libs: Path) -> str | None:
    for jar in sorted(libs.glob("kafka-clients-*.jar")):
        return jar.name.removeprefix("kafka-clients-").removesuffix(".jar")
    return None


async def _kafka_preflight(bootstrap: str) -> None:
    """Fail before the first phase, not minutes in, when Kafka or the perf tool is missing."""
    libs = kafka_libs()
    if not any(libs.glob("kafka-tools-*.jar")):
        raise BenchError(f"no kafka-tools jar in {libs}: run ./deploy/local/setup")
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
    except (OSError, TimeoutError, KafkaError) as exc:
        raise BenchError(
            f"Kafka at {bootstrap} does not answer ({exc!r}): run `qinqing infra up`"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=n, num_partitions=partitions, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def _delete_topics(bootstrap: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


def _producer_perf(bootstrap: str, topic: str, records: int, libs: Path) -> dict[str, float]:
    """Kafka's own ProducerPerformance: 1 KB records, acks=all, unthrottled; its summary line."""
    if not any(libs.glob("kafka-tools-*.jar")):
        raise BenchError(
            f"no kafka-tools jar in {libs}: run ./deploy/local/setup (qinqing infra up)"
        )
    cmd = [
        _java(), "-Xmx512m", "-cp", f"{libs}/*", "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(records), "--record-size", "1024",
        "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    summary = None
    for line in proc.stdout.splitlines():
        if match := _PERF_SUMMARY.search(line):
            summary = match
    if proc.returncode != 0 or summary is None:
        tail = (proc.stdout + proc.stderr).strip()[-800:]
        raise BenchError(f"ProducerPerformance failed (exit {proc.returncode}): {tail}")
    return {
        "records": int(summary["records"]),
        "records_per_s": float(summary["rps"]),
        "mb_per_s": float(summary["mbps"]),
        "latency_ms_avg": float(summary["avg"]),
        "latency_ms_p50": float(summary["p50"]),
        "latency_ms_p99": float(summary["p99"]),
    }


class _RelayHarness:
    """One OutboxRelay (production settings: batch size from Settings, acks=all) kept warm."""

    def __init__(self, pool: asyncpg.Pool, schema: str, service: str, settings: Settings) -> None:
        producer_settings = ProducerSettings(bootstrap_servers=settings.kafka_bootstrap_servers)
        self.relay = OutboxRelay(
            PostgresEventStore(pool, schema),
            PostgresCheckpoints(pool, schema),
            service,
            lambda: kafka_producer(producer_settings),
            batch_size=settings.relay_batch_size,
        )
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


async def _relay_figure(
    *,
    pool: asyncpg.Pool,
    schema: str,
    store: PostgresEventStore,
    cfg: BenchConfig,
    settings: Settings,
    say: Say,
) -> tuple[dict[str, Any], float]:
    """Returns the figure and the seconds spent loading its backlog."""
    definition = (
        "events/s published by services.runtime.relay.OutboxRelay (acks=all, idempotent, batch "
        f"size {settings.relay_batch_size}) from a backlog of events with "
        f"{cfg.relay_payload_bytes} B of data JSON (~1 KB records) / records/s of Kafka's "
        "ProducerPerformance (1024 B records, acks=all, unthrottled); same broker, fresh topics "
        "with the same partition count"
    )
    target = TARGETS["relay_vs_producer_perf"]
    bootstrap = settings.kafka_bootstrap_servers
    say(f"relay: loading {cfg.relay_warmup_events:,} warm-up events")
    await _load_events(store, cfg.relay_warmup_events, cfg, offset=0)
    harness = _RelayHarness(pool, schema, schema, settings)  # service = schema: a fresh topic
    perf_topic = f"{schema}.producer_perf"
    topics = [harness.topic, perf_topic]
    try:
        await _create_topics(bootstrap, topics, cfg.topic_partitions)
    except Exception as exc:
        raise BenchError(f"Kafka at {bootstrap}: cannot create topics ({exc})") from exc
    perf_runs: list[dict[str, float]] = []

    async def producer_perf() -> None:
        say(f"relay: ProducerPerformance, {cfg.producer_perf_records:,} records of 1024 B")
        run = await asyncio.to_thread(
            _producer_perf, bootstrap, perf_topic, cfg.producer_perf_records, kafka_libs()
        )
        perf_runs.append(run)
        say(f"relay: ProducerPerformance {run['records_per_s']:,.0f} records/s")

    try:
        if cfg.producer_perf_runs > 1:
            await producer_perf()
        say("relay: warm-up (publishing the warm-up events)")
        await harness.publish(cfg.relay_warmup_events, cfg.relay_timeout_s)
        say(f"relay: loading a backlog of {cfg.relay_events:,} events")
        load_s = await _load_events(store, cfg.relay_events, cfg, offset=1)
        say(f"relay: backlog loaded in {load_s:.1f} s; publishing it")
        published, seconds, cpu_s = await harness.publish(
            cfg.relay_warmup_events + cfg.relay_events, cfg.relay_timeout_s
        )
        relay_rate = _rate(published, seconds)
        await harness.close()
        say(f"relay: {relay_rate:,.0f} events/s")
        await producer_perf()
    finally:
        await harness.close()
        with contextlib.suppress(Exception):
            await _delete_topics(bootstrap, topics)
    perf = max(perf_runs, key=lambda run: run["records_per_s"])
    figure = _figure(
        (relay_rate, perf["records_per_s"]),
        target=target,
        definition=definition,
        relay_events_per_s=round(relay_rate, 1),
        relay_events=published,
        relay_seconds=round(seconds, 3),
        relay_client_cpu_us_per_event=round(cpu_s / published * 1e6, 1),
        producer_perf_records_per_s=perf["records_per_s"],
        producer_perf=perf,
        producer_perf_runs=[run["records_per_s"] for run in perf_runs],
        topic_partitions=cfg.topic_partitions,
    )
    return figure, load_s


# ----------------------------------------------------------------- phase 3: rebuild vs read


async def _raw_read(pool: asyncpg.Pool, schema: str, batch: int) -> tuple[int, float]:
    """Every row of `events` in global order through a server-side cursor, `batch` at a time."""
    async with pool.acquire() as conn, conn.transaction():
        started = time.perf_counter()
        cursor = await conn.cursor(
            f"SELECT {_EVENT_COLUMNS} FROM {schema}.events ORDER BY events.tx_id, events.seq"
        )
        rows = 0
        while chunk := await cursor.fetch(batch):
            rows += len(chunk)
        return rows, time.perf_counter() - started


class StreamTypeCounts:
    """A small read model: events per stream type (the stream id's prefix before '-')."""

    def __init__(self, schema: str) -> None:
        self.name = "bench_stream_type_counts"
        self.table = f"{schema}.bench_stream_type_counts"
        self.tables: Sequence[str] = (self.table,)
        self._upsert = (
            f"INSERT INTO {self.table} AS t (stream_type, events) VALUES ($1, $2)"
            " ON CONFLICT (stream_type) DO UPDATE SET events = t.events + excluded.events"
        )

    async def create(self, pool: asyncpg.Pool) -> None:
        await pool.execute(
            f"CREATE TABLE {self.table} (stream_type text PRIMARY KEY, events bigint NOT NULL)"
        )

    async def apply(self, conn: asyncpg.Connection, event: EventRecord) -> None:
        await conn.execute(self._upsert, event.stream_id.partition("-")[0], 1)

    async def apply_batch(self, conn: asyncpg.Connection, events: Sequence[EventRecord]) -> None:
        counts = Counter(event.stream_id.partition("-")[0] for event in events)
        await conn.executemany(self._upsert, sorted(counts.items()))


async def _rebuild_figure(
    pool: asyncpg.Pool, schema: str, cfg: BenchConfig, say: Say
) -> dict[str, Any]:
    definition = (
        "events/s of services.runtime.projection.ProjectionRunner.rebuild (default batch size) of "
        "a projection counting events per stream type into a table (apply_batch: one upsert per "
        "stream type per batch) / rows/s of a plain read of the same rows and columns in global "
        f"order (asyncpg server-side cursor, {cfg.read_batch} rows per fetch, Records only)"
    )
    target = TARGETS["rebuild_vs_raw_read"]
    say("rebuild: warm-up read of the event table")
    total, _ = await _raw_read(pool, schema, cfg.read_batch)
    projection = StreamTypeCounts(schema)
    await projection.create(pool)
    runner = ProjectionRunner(pool, schema, projection)
    best_read, best_rebuild = 0.0, 0.0
    rebuilt, cpu_us = 0, 0.0
    for rep in range(1, cfg.read_repeats + 1):
        rows, read_s = await _raw_read(pool, schema, cfg.read_batch)
        cpu_started = time.process_time()
        started = time.perf_counter()
        rebuilt = await runner.rebuild()
        rebuild_s = time.perf_counter() - started
        cpu_us = (time.process_time() - cpu_started) / max(rebuilt, 1) * 1e6
        best_read = max(best_read, _rate(rows, read_s))
        best_rebuild = max(best_rebuild, _rate(rebuilt, rebuild_s))
        say(
            f"rebuild: pass {rep}/{cfg.read_repeats}: raw read {_rate(rows, read_s):,.0f} rows/s,"
            f" rebuild {_rate(rebuilt, rebuild_s):,.0f} events/s"
        )
    counted = await pool.fetchval(f"SELECT coalesce(sum(events), 0) FROM {projection.table}")
    if counted != total or rebuilt != total:
        raise BenchError(f"rebuild counted {counted} and replayed {rebuilt} of {total} events")
    return _figure(
        (best_rebuild, best_read),
        target=target,
        definition=definition,
        rebuild_events_per_s=round(best_rebuild, 1),
        raw_read_rows_per_s=round(best_read, 1),
        rebuild_client_cpu_us_per_event=round(cpu_us, 1),
        events=total,
        passes=cfg.read_repeats,
    )


# --------------------------------------------------------------------------- machine, output


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _load_average() -> list[float] | None:
    """1/5/15-minute load: other work on the machine skews every phase, so say how much."""
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def _redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, "", ""))


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True, text=True, cwd=repo_root(), timeout=5, check=True,
        )  # fmt: skip
        return out.stdout.strip() or None
    return None


async def _machine(pool: asyncpg.Pool) -> dict[str, Any]:
    pg = await pool.fetchrow(
        "SELECT current_setting('server_version') AS version,"
        " current_setting('synchronous_commit') AS synchronous_commit,"
        " current_setting('fsync') AS fsync, current_setting('shared_buffers') AS shared_buffers"
    )
    assert pg is not None
    import asyncpg as apg  # noqa: PLC0415

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg["version"],
        "postgresql_settings": {
            k: pg[k] for k in ("synchronous_commit", "fsync", "shared_buffers")
        },
        "kafka": _kafka_version(kafka_libs()),
        "asyncpg": apg.__version__,
        "git_commit": _git_commit(),
    }


def render_markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        f"Measured {result['date']} ({result['mode']} run) on {machine['cpu_count']} x "
        f"{machine['cpu_model']}, {machine['memory_gib']} GiB, Python {machine['python']}, "
        f"PostgreSQL {machine['postgresql']}, Kafka {machine['kafka']}; load average "
        f"{machine.get('load_average_at_start')} at the start. "
        "Ratios are ours / the raw ceiling, both measured in the same run; "
        "`qinqing bench` regenerates this table and `docs/benchmarks.json`.",
        "",
        "| Figure | Ratio | Target | Ours | Ceiling |",
        "|---|---:|---:|---|---|",
    ]
    for key in FIGURES:
        fig = result[key]
        ours, ceiling = _absolutes(key, fig)
        ratio = f"{fig['ratio']:.2f}"
        mark = " ✓" if fig["meets_target"] else " ✗"
        lines.append(f"| `{key}` | {ratio}{mark} | >= {fig['target']} | {ours} | {ceiling} |")
    return "\n".join(lines) + "\n"


def _absolutes(key: str, fig: dict[str, Any]) -> tuple[str, str]:
    if key.startswith("append"):
        lat = fig["append_latency_ms"]
        raw_lat = fig["raw_insert_latency_ms"]
        return (
            f"{fig['append_events_per_s']:,.0f} events/s (p50 {lat['p50']:.2f} ms, "
            f"p99 {lat['p99']:.2f} ms per append)",
            f"{fig['raw_insert_rows_per_s']:,.0f} rows/s (p50 {raw_lat['p50']:.2f} ms, "
            f"p99 {raw_lat['p99']:.2f} ms per INSERT)",
        )
    if key == "relay_vs_producer_perf":
        return (
            f"{fig['relay_events_per_s']:,.0f} events/s relayed",
            f"{fig['producer_perf_records_per_s']:,.0f} records/s ProducerPerformance",
        )
    return (
        f"{fig['rebuild_events_per_s']:,.0f} events/s rebuilt ({fig['events']:,} events)",
        f"{fig['raw_read_rows_per_s']:,.0f} rows/s cursor read",
    )


def render_table(result: dict[str, Any]) -> str:
    rows = [("figure", "ratio", "target", "ours", "ceiling")]
    for key in FIGURES:
        fig = result[key]
        ours, ceiling = _absolutes(key, fig)
        ratio = f"{fig['ratio']:.2f}"
        rows.append((key, ratio, f">= {fig['target']}", ours, ceiling))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


# --------------------------------------------------------------------------- run


async def run_bench(
    cfg: BenchConfig,
    settings: Settings | None = None,
    say: Say = lambda line: typer.echo(line, err=True),
) -> dict[str, Any]:
    """One run in fresh schemas, dropped afterwards; returns the JSON document.

    Appends run in `bench_<hex>_a`; the relay backlog (which the rebuild then replays) lives in
    `bench_<hex>_r`, so the rebuild replays exactly the warm-up + backlog events.
    """
    settings = settings or Settings()
    base = f"bench_{uuid.uuid4().hex[:12]}"
    appends_schema, log_schema = f"{base}_a", f"{base}_r"
    began = time.perf_counter()
    try:
        pool = await create_pool(settings, min_size=cfg.writers, max_size=cfg.writers + 2)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(
            f"PostgreSQL at {settings.database_url} does not answer ({exc}): run `qinqing infra up`"
        ) from exc
    assert pool is not None
    result: dict[str, Any] = {"mode": cfg.mode, "date": _now().isoformat(timespec="seconds")}
    try:
        result["machine"] = await _machine(pool)
        result["machine"]["load_average_at_start"] = _load_average()
        result["stack"] = {
            "database": _redact(settings.database_url),
            "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
        }
        say(f"setup: schemas {appends_schema}, {log_schema} (mode {cfg.mode})")
        conn = await asyncpg.connect(settings.database_url)
        try:
            for schema in (appends_schema, log_schema):
                await migrate(conn, schema, package_migrations("services.runtime"))
        finally:
            await conn.close()
        await _kafka_preflight(settings.kafka_bootstrap_servers)
        result.update(await _append_figures(pool, appends_schema, cfg, say))
        relay, load_s = await _relay_figure(
            pool=pool,
            schema=log_schema,
            store=PostgresEventStore(pool, log_schema),
            cfg=cfg,
            settings=settings,
            say=say,
        )
        result["relay_vs_producer_perf"] = relay
        result["rebuild_vs_raw_read"] = await _rebuild_figure(pool, log_schema, cfg, say)
        result["load"] = {
            "definition": "loading the relay backlog: store appends of 100-event commands, "
            "4 writers, ~1 KB events",
            "events": cfg.relay_events,
            "seconds": round(load_s, 2),
            "events_per_s": round(_rate(cfg.relay_events, load_s), 1),
            "events_per_command": cfg.load_batch,
            "writers": 4,
        }
    finally:
        for schema in (appends_schema, log_schema):
            with contextlib.suppress(Exception):
                await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()
    result["machine"]["load_average_at_end"] = _load_average()
    result["config"] = asdict(cfg)
    result["elapsed_s"] = round(time.perf_counter() - began, 1)
    say(f"done in {result['elapsed_s']:.0f} s; schemas {base}_a/_r dropped")
    return {
        key: result[key]
        for key in ("date", "mode", "elapsed_s", "machine", "stack", *FIGURES, "load", "config")
    }


def write_outputs(result: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / "benchmarks.json", output_dir / "benchmarks.md"
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(result), encoding="utf-8")
    return json_path, md_path


def bench_command(
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller sizes, under ~45 s (full run: ~3 min).")
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Where benchmarks.json and benchmarks.md go (default: <repo>/docs)."),
    ] = None,
) -> None:
    """Measure the event store, relay and projection rebuild against raw ceilings."""
    cfg = QUICK if quick else FULL
    try:
        result = asyncio.run(run_bench(cfg))
    except BenchError as exc:
        typer.echo(f"bench failed: {exc}", err=True)
        raise typer.Exit(1) from None
    json_path, md_path = write_outputs(result, output_dir or repo_root() / "docs")
    typer.echo(render_table(result))
    typer.echo(f"wrote {json_path} and {md_path}")
