"""Tamper evidence: per-stream hash chains (written by append) and sealed blocks in global order.

The sealer runs beside the writers and never makes them wait: it reads committed events below
the transaction horizon, as any reader does, and appends hash-chained blocks. `verify` recomputes
both chains from the stored rows and names the first event that was altered, removed or moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum

import asyncpg

from services.runtime.events import (
    START,
    Position,
    RecordedEvent,
    chain,
    check_schema_name,
)
from services.runtime.pgstore import Conn, PostgresEventStore, to_recorded

GENESIS = b""


def block_hash(prev_hash: bytes, hashes: list[bytes]) -> bytes:
    return hashlib.sha256(prev_hash + b"".join(hashes)).digest()


class ProblemKind(StrEnum):
    ALTERED = "altered"  # the row no longer hashes to its recorded content hash
    REMOVED = "removed"  # a stream version or a sealed event is missing
    CHAIN_BROKEN = "chain_broken"  # the stream's chain does not link (rewritten history)
    REORDERED = "reordered"  # sealed events no longer stand in their sealed global order
    SEAL_BROKEN = "seal_broken"  # a block's own hash or link to its predecessor is wrong


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    detail: str
    stream_id: str | None = None
    stream_version: int | None = None
    seq: int | None = None


@dataclass
class VerifyReport:
    events_checked: int = 0
    blocks_checked: int = 0
    unsealed: int = 0
    problems: list[Problem] = field(default_factory=list)
    # False: the schema was never migrated (the service is not deployed): nothing to verify,
    # which is not tampering.
    deployed: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None


class Sealer:
    """Seals committed events of one schema into blocks of at most `block_size` events."""

    def __init__(self, pool: asyncpg.Pool, schema: str, block_size: int = 1000) -> None:
        self.pool, self.schema, self.block_size = pool, check_schema_name(schema), block_size
        self.store = PostgresEventStore(pool, schema)
        # One sealer per schema at a time; a second one skips its turn instead of waiting.
        self._lock_key = int.from_bytes(
            hashlib.sha256(f"qinqing.sealer.{schema}".encode()).digest()[:8], "big", signed=True
        )

    async def seal_once(self) -> int:
        """Seal what committed since the last block; returns the number of events sealed.

        Each block commits on its own: an open writing transaction holds every reader's horizon
        back (see pgstore), so the sealer never keeps one open across a long backlog.
        """
        sealed = 0
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                return 0
            try:
                last = await conn.fetchrow(
                    f"SELECT block_no, last_tx_id::text::bigint AS tx_id, last_seq, block_hash"
                    f" FROM {self.schema}.seal_blocks ORDER BY block_no DESC LIMIT 1"
                )
                block_no = 0 if last is None else last["block_no"]
                after = START if last is None else Position(last["tx_id"], last["last_seq"])
                prev = GENESIS if last is None else bytes(last["block_hash"])
                while batch := [e async for e in self._next(after)]:
                    block_no += 1
                    prev = await self._write_block(conn, block_no, prev, batch)
                    sealed += len(batch)
                    after = batch[-1].position
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)
        return sealed

    async def _next(self, after: Position) -> AsyncIterator[RecordedEvent]:
        """At most one block's worth of committed events after `after`."""
        count = 0
        events = self.store.read_all(after, batch_size=self.block_size)
        async for event in events:
            yield event
            count += 1
            if count == self.block_size:
                break
        await events.aclose()  # type: ignore[attr-defined]

    async def _write_block(
        self, conn: Conn, block_no: int, prev: bytes, events: list[RecordedEvent]
    ) -> bytes:
        hashes = [e.chain_hash for e in events]
        digest = block_hash(prev, hashes)
        await conn.execute(
            f"INSERT INTO {self.schema}.seal_blocks (block_no, first_tx_id, first_seq, last_tx_id,"
            " last_seq, event_count, prev_hash, block_hash, seqs, hashes)"
            " VALUES ($1, $2::text::xid8, $3, $4::text::xid8, $5, $6, $7, $8, $9, $10)",
            block_no,
            str(events[0].position.tx_id),
            events[0].position.seq,
            str(events[-1].position.tx_id),
            events[-1].position.seq,
            len(events),
            prev,
            digest,
            [e.position.seq for e in events],
            hashes,
        )
        return digest


def _check_stream_event(event: RecordedEvent, expected_version: int, prev: bytes) -> Problem | None:
    where = {"stream_id": event.stream_id, "seq": event.position.seq}
    if event.stream_version != expected_version:
        return Problem(
            ProblemKind.REMOVED,
            f"stream {event.stream_id!r} jumps from version {expected_version - 1}"
            f" to {event.stream_version}",
            stream_version=expected_version,
            **where,  # type: ignore[arg-type]
        )
    if event.recompute_content_hash() != event.content_hash:
        return Problem(
            ProblemKind.ALTERED,
            f"event {event.stream_id!r} v{event.stream_version} does not match its content hash",
            stream_version=event.stream_version,
            **where,  # type: ignore[arg-type]
        )
    if chain(prev, event.content_hash) != event.chain_hash:
        return Problem(
            ProblemKind.CHAIN_BROKEN,
            f"event {event.stream_id!r} v{event.stream_version} does not chain to its predecessor",
            stream_version=event.stream_version,
            **where,  # type: ignore[arg-type]
        )
    return None


async def _verify_streams(conn: Conn, schema: str, report: VerifyReport) -> None:
    sql = (
        "SELECT stream_id, stream_version, tx_id::text::bigint AS tx_id, seq, event_id, event_type,"
        " schema_version, data::text AS data, metadata::text AS metadata, occurred_at,"
        f" recorded_at, content_hash, chain_hash FROM {schema}.events"
        " ORDER BY stream_id, stream_version"
    )
    stream_id: str | None = None
    expected, prev = 1, GENESIS
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for row in conn.cursor(sql, prefetch=2000):
            event = to_recorded(row)
            if event.stream_id != stream_id:
                stream_id, expected, prev = event.stream_id, 1, GENESIS
            report.events_checked += 1
            problem = _check_stream_event(event, expected, prev)
            if problem is not None:
                report.problems.append(problem)
            expected, prev = event.stream_version + 1, event.chain_hash


async def _verify_seals(conn: Conn, schema: str, report: VerifyReport) -> None:
    blocks = await conn.fetch(
        f"SELECT block_no, prev_hash, block_hash, seqs, hashes FROM {schema}.seal_blocks"
        " ORDER BY block_no"
    )
    current = await conn.fetch(
        f"SELECT seq, chain_hash, stream_id, stream_version FROM {schema}.events"
        " WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx_id, seq"
    )
    index_of = {bytes(r["chain_hash"]): i for i, r in enumerate(current)}
    prev, cursor = GENESIS, 0
    for block in blocks:
        report.blocks_checked += 1
        hashes = [bytes(h) for h in block["hashes"]]
        if bytes(block["prev_hash"]) != prev or block_hash(prev, hashes) != bytes(
            block["block_hash"]
        ):
            report.problems.append(
                Problem(ProblemKind.SEAL_BROKEN, f"block {block['block_no']} does not verify")
            )
            return
        prev = bytes(block["block_hash"])
        for sealed_seq, sealed_hash in zip(block["seqs"], hashes, strict=True):
            row = current[cursor] if cursor < len(current) else None
            if row is not None and bytes(row["chain_hash"]) == sealed_hash:
                cursor += 1
                continue
            found = index_of.get(sealed_hash)
            kind = ProblemKind.REMOVED if found is None else ProblemKind.REORDERED
            where = "is gone or rewritten" if found is None else f"now stands at index {found}"
            report.problems.append(
                Problem(
                    kind,
                    f"event seq {sealed_seq}, sealed in block {block['block_no']} at global index"
                    f" {cursor}, {where}",
                    seq=sealed_seq,
                    stream_id=None if found is None else current[found]["stream_id"],
                    stream_version=None if found is None else current[found]["stream_version"],
                )
            )
            return
    report.unsealed = len(current) - cursor


# The tables verify reads; `qinqing migrate` makes them with the schema's migration record.
_LOG_TABLES = ("events", "seal_blocks")


async def missing_tables(db: Conn | asyncpg.Pool, schema: str) -> list[str]:
    """Which of its migration record and its log's tables `schema` lacks: all of them when it
    was never migrated, none when it can be sealed and verified."""
    tables = ("schema_migrations", *_LOG_TABLES)
    found = await db.fetch(
        "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass($2 || '.' || t) IS NULL",
        list(tables),
        check_schema_name(schema),
    )
    return [row["t"] for row in found]


async def verify(pool: asyncpg.Pool, schema: str) -> VerifyReport:
    """Recompute every stream chain and every sealed block of `schema`. A schema that was
    never migrated is reported as not deployed; one migrated whose log tables are gone, as
    history removed."""
    check_schema_name(schema)
    report = VerifyReport()
    async with pool.acquire() as conn:
        missing = await missing_tables(conn, schema)
        if "schema_migrations" in missing:
            report.deployed = False
            return report
        gone = [t for t in _LOG_TABLES if t in missing]
        if gone:
            detail = f"table(s) {', '.join(gone)} of a migrated schema are gone"
            report.problems.append(Problem(ProblemKind.REMOVED, detail))
            return report
        await _verify_seals(conn, schema, report)
        await _verify_streams(conn, schema, report)
    return report
