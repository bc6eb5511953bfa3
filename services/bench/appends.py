"""Phase 1: the store's appends against raw single-row INSERTs, same writers and rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.bench.common import STREAM_TYPES, BenchConfig, Say, figure, now, pad, rate
from services.runtime.events import EventStore, NewEvent
from services.runtime.pgstore import GroupCommitEventStore, PostgresEventStore


def _percentiles_ms(samples: Sequence[float]) -> dict[str, float]:
    if len(samples) < 2:
        only = samples[0] * 1000 if samples else 0.0
        return {"p50": round(only, 3), "p99": round(only, 3)}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": round(cuts[49] * 1000, 3), "p99": round(cuts[98] * 1000, 3)}


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
        self, store: EventStore, writer: int, batch: int, deadline: float, run: _Run
    ) -> None:
        stream, version = self._new_stream(f"s{batch}w", writer), 0
        meta = {"correlation_id": str(uuid.uuid4()), "actor": f"bench-writer-{writer}"}
        while time.perf_counter() < deadline:
            events = [
                NewEvent(
                    "bench.Deposited",
                    pad(self.cfg.small_payload_bytes, version + i),
                    now(),
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
            data = json.dumps(pad(self.cfg.small_payload_bytes, version), separators=(",", ":"))
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
                now(),
                placeholder_hash,
                placeholder_hash,
            )
            run.latencies.append(time.perf_counter() - started)
            run.count += 1
            if version >= self.cfg.stream_length:
                stream, version = self._new_stream("rw", writer), 0

    async def measure(self, kind: str, seconds: float) -> _Run:
        """`kind` is "raw", "plain1" (the store on a held connection per writer), or
        "group1"/"group10" (the group-commit store on the pool; events per command)."""
        runs = [_Run() for _ in range(self.cfg.writers)]
        grouped = GroupCommitEventStore(self.pool, self.schema)
        async with contextlib.AsyncExitStack() as stack:
            # Raw INSERTs and the plain store alike: each writer holds its own connection.
            conns = [
                await stack.enter_async_context(self.pool.acquire())
                for _ in range(self.cfg.writers if kind in ("raw", "plain1") else 0)
            ]
            cpu_started = time.process_time()
            started = time.perf_counter()
            deadline = started + seconds
            if kind == "raw":
                jobs = [self._raw_writer(c, w, deadline, runs[w]) for w, c in enumerate(conns)]
            elif kind == "plain1":
                stores = [PostgresEventStore(c, self.schema) for c in conns]
                jobs = [
                    self._store_writer(st, w, 1, deadline, runs[w]) for w, st in enumerate(stores)
                ]
            else:
                batch = int(kind.removeprefix("group"))
                jobs = [
                    self._store_writer(grouped, w, batch, deadline, runs[w])
                    for w in range(self.cfg.writers)
                ]
            await asyncio.gather(*jobs)
        total = _Run(seconds=time.perf_counter() - started, cpu_s=time.process_time() - cpu_started)
        for run in runs:
            total.count += run.count
            total.latencies.extend(run.latencies)
        return total


async def _rounds(phase: _AppendPhase, cfg: BenchConfig, say: Say) -> dict[str, _Run]:
    """Each kind of write warmed up, then measured in alternating rounds: the totals by kind."""
    await phase.create_raw_table()
    kinds = ("raw", "plain1", "group1", "group10")
    say(
        f"appends: warm-up {cfg.warmup_s:.0f} s each for raw INSERT, plain 1-event, grouped"
        " 1-event and grouped 10-event appends"
    )
    for kind in kinds:
        await phase.measure(kind, cfg.warmup_s)
    totals = {kind: _Run() for kind in kinds}
    for round_no in range(1, cfg.rounds + 1):
        for kind in kinds:
            run = await phase.measure(kind, cfg.phase_s)
            totals[kind].add(run)
            say(
                f"appends: round {round_no}/{cfg.rounds} {kind:>7}: "
                f"{rate(run.count, run.seconds):,.0f} {'rows' if kind == 'raw' else 'events'}/s"
            )
    return totals


async def append_figures(
    pool: asyncpg.Pool, schema: str, cfg: BenchConfig, say: Say
) -> dict[str, dict[str, Any]]:
    totals = await _rounds(_AppendPhase(pool, schema, cfg), cfg, say)
    raw, plain, one, ten = totals["raw"], totals["plain1"], totals["group1"], totals["group10"]
    raw_rate = rate(raw.count, raw.seconds)
    common: dict[str, Any] = {
        "writers": cfg.writers,
        "raw_insert_rows_per_s": round(raw_rate, 1),
        "raw_insert_latency_ms": _percentiles_ms(raw.latencies),
        "raw_insert_client_cpu_us_per_row": raw.client_cpu_per_item_us,
        "raw_rows": raw.count,
        "seconds_each": round(raw.seconds, 2),
        "data_json_bytes": cfg.small_payload_bytes,
    }
    one_rate, ten_rate = rate(one.count, one.seconds), rate(ten.count, ten.seconds)
    plain_rate = rate(plain.count, plain.seconds)
    return {
        "append_vs_raw_insert": figure(
            (one_rate, raw_rate),
            key="append_vs_raw_insert",
            definition=(
                "events/s of GroupCommitEventStore.append (1-event commands with command ids, "
                f"{cfg.writers} concurrent writers on their own streams, hash chains computed in "
                "the database, concurrent commands committed together) / rows/s of plain "
                "single-row INSERTs of rows of the same columns and sizes into a plain table "
                "(same columns, defaults and primary key only) through asyncpg, "
                f"{cfg.writers} concurrent writers each holding a connection; phases alternate "
                "in rounds. plain_store_* is PostgresEventStore, one transaction per command, "
                "each writer holding a connection"
            ),
            append_events_per_s=round(one_rate, 1),
            plain_store_events_per_s=round(plain_rate, 1),
            plain_store_ratio=round(plain_rate / raw_rate, 3),
            plain_store_latency_ms=_percentiles_ms(plain.latencies),
            append_latency_ms=_percentiles_ms(one.latencies),
            append_client_cpu_us_per_event=one.client_cpu_per_item_us,
            events=one.count,
            **common,
        ),
        "append_vs_raw_insert_batch10": figure(
            (ten_rate, raw_rate),
            key="append_vs_raw_insert_batch10",
            definition=(
                "events/s of GroupCommitEventStore.append with 10-event commands (same writers "
                "and settings) / rows/s of the same plain single-row INSERT ceiling"
            ),
            append_events_per_s=round(ten_rate, 1),
            append_commands_per_s=round(ten_rate / 10, 1),
            append_latency_ms=_percentiles_ms(ten.latencies),
            append_client_cpu_us_per_event=ten.client_cpu_per_item_us,
            events=ten.count,
            **common,
        ),
    }
