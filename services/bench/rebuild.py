"""Phase 3: `ProjectionRunner.rebuild` of a small read model against a raw cursor read."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.bench.common import BenchConfig, BenchError, Say, figure, rate
from services.runtime.events import EventRecord
from services.runtime.projection import ProjectionRunner

_EVENT_COLUMNS = (
    "stream_id, stream_version, tx_id::text::bigint AS tx_id, seq, event_id, event_type,"
    " schema_version, data::text AS data, metadata::text AS metadata, occurred_at, recorded_at,"
    " content_hash, chain_hash"
)


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


async def rebuild_figure(
    pool: asyncpg.Pool, schema: str, cfg: BenchConfig, say: Say
) -> dict[str, Any]:
    definition = (
        "events/s of services.runtime.projection.ProjectionRunner.rebuild (default batch size) of "
        "a projection counting events per stream type into a table (apply_batch: one upsert per "
        "stream type per batch) / rows/s of a plain read of the same rows and columns in global "
        f"order (asyncpg server-side cursor, {cfg.read_batch} rows per fetch, Records only)"
    )
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
        best_read = max(best_read, rate(rows, read_s))
        best_rebuild = max(best_rebuild, rate(rebuilt, rebuild_s))
        say(
            f"rebuild: pass {rep}/{cfg.read_repeats}: raw read {rate(rows, read_s):,.0f} rows/s,"
            f" rebuild {rate(rebuilt, rebuild_s):,.0f} events/s"
        )
    counted = await pool.fetchval(f"SELECT coalesce(sum(events), 0) FROM {projection.table}")
    if counted != total or rebuilt != total:
        raise BenchError(f"rebuild counted {counted} and replayed {rebuilt} of {total} events")
    return figure(
        (best_rebuild, best_read),
        key="rebuild_vs_raw_read",
        definition=definition,
        rebuild_events_per_s=round(best_rebuild, 1),
        raw_read_rows_per_s=round(best_read, 1),
        rebuild_client_cpu_us_per_event=round(cpu_us, 1),
        events=total,
        passes=cfg.read_repeats,
    )
