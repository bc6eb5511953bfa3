"""Tamper evidence on a real server: with the guard trigger disabled, every edit is named."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from typer.testing import CliRunner, Result

from services import admin, cli
from services.runtime.events import NO_STREAM, chain
from services.runtime.integrity import ProblemKind, Sealer, verify
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pgstore import PostgresEventStore
from tests.contract.event_store import ev


@pytest.fixture
async def store(db_pool: asyncpg.Pool, pg_schema: str) -> PostgresEventStore:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("binding"))
    store = PostgresEventStore(db_pool, pg_schema)
    for stream in ("a", "b", "c"):
        for version in range(4):
            await store.append(stream, version, [ev(n=version)])
    return store


async def tamper(store: PostgresEventStore, sql: str, *args: object) -> None:
    """Edit history as an attacker with table-owner rights would: guard trigger off."""
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute(f"ALTER TABLE {store.schema}.events DISABLE TRIGGER events_append_only")
        await conn.execute(sql.format(s=store.schema), *args)
        await conn.execute(f"ALTER TABLE {store.schema}.events ENABLE TRIGGER events_append_only")


async def test_an_untouched_log_verifies_and_counts_what_is_not_sealed(
    store: PostgresEventStore,
) -> None:
    sealer = Sealer(store.pool, store.schema, block_size=5)
    assert (await verify(store.pool, store.schema)).unsealed == 12
    assert await sealer.seal_once() == 12
    await store.append("d", NO_STREAM, [ev()])
    report = await verify(store.pool, store.schema)
    assert report.ok, report.problems
    assert (report.events_checked, report.blocks_checked, report.unsealed) == (13, 3, 1)
    assert await sealer.seal_once() == 1
    assert (await verify(store.pool, store.schema)).unsealed == 0


@pytest.mark.parametrize(
    ("edit", "kind", "stream"),
    [
        pytest.param(
            "UPDATE {s}.events SET data = '{{\"n\": 99}}'"
            " WHERE stream_id = 'b' AND stream_version = 2",
            ProblemKind.ALTERED,
            "b",
            id="altered-payload",
        ),
        pytest.param(
            "DELETE FROM {s}.events WHERE stream_id = 'c' AND stream_version = 2",
            ProblemKind.REMOVED,
            "c",
            id="deleted-from-the-middle-of-a-stream",
        ),
    ],
)
async def test_an_edited_stream_event_is_named(
    store: PostgresEventStore, edit: str, kind: ProblemKind, stream: str
) -> None:
    await tamper(store, edit)
    problem = (await verify(store.pool, store.schema)).first_problem
    assert problem is not None
    assert (problem.kind, problem.stream_id, problem.stream_version) == (kind, stream, 2)


async def test_a_deleted_sealed_event_is_named_even_at_a_stream_end(
    store: PostgresEventStore,
) -> None:
    await Sealer(store.pool, store.schema).seal_once()
    seq = await store.pool.fetchval(
        f"SELECT seq FROM {store.schema}.events WHERE stream_id = 'a' AND stream_version = 4"
    )
    await tamper(store, "DELETE FROM {s}.events WHERE seq = $1", seq)
    report = await verify(store.pool, store.schema)
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.seq) == (ProblemKind.REMOVED, seq)


async def test_reordered_sealed_events_are_named(store: PostgresEventStore) -> None:
    await Sealer(store.pool, store.schema).seal_once()
    rows = await store.pool.fetch(
        f"SELECT tx_id::text AS tx, seq FROM {store.schema}.events ORDER BY tx_id, seq"
    )
    first, second = rows[3], rows[4]
    await tamper(
        store,
        "UPDATE {s}.events SET tx_id = CASE seq WHEN $1 THEN $3::text::xid8 ELSE $4::text::xid8 END"
        " WHERE seq IN ($1, $2)",
        first["seq"],
        second["seq"],
        second["tx"],
        first["tx"],
    )
    problem = (await verify(store.pool, store.schema)).first_problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.REORDERED, first["seq"])


async def test_a_rewrite_with_recomputed_hashes_is_caught_by_the_seal(
    store: PostgresEventStore,
) -> None:
    await Sealer(store.pool, store.schema).seal_once()
    (*_, prev, last) = await store.read_stream("b")
    forged_data = '{"n":1000}'
    forged = dataclasses.replace(last, data_json=forged_data).recompute_content_hash()
    await tamper(
        store,
        "UPDATE {s}.events SET data = $1, content_hash = $2, chain_hash = $3 WHERE seq = $4",
        forged_data,
        forged,
        chain(prev.chain_hash, forged),
        last.position.seq,
    )
    report = await verify(store.pool, store.schema)
    assert len(report.problems) == 1  # the stream chain alone is consistent again...
    assert report.first_problem is not None  # ...but the seal remembers the original
    assert (report.first_problem.kind, report.first_problem.seq) == (
        ProblemKind.REMOVED,
        last.position.seq,
    )


async def test_a_forged_block_is_named(store: PostgresEventStore) -> None:
    await Sealer(store.pool, store.schema, block_size=4).seal_once()
    async with store.pool.acquire() as conn, conn.transaction():
        table = f"{store.schema}.seal_blocks"
        await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER seal_blocks_append_only")
        await conn.execute(f"UPDATE {table} SET event_count = 3 WHERE block_no = 2")
        await conn.execute(
            f"UPDATE {table} SET hashes = hashes[1:3], seqs = seqs[1:3] WHERE block_no = 2"
        )
    problem = (await verify(store.pool, store.schema)).first_problem
    assert problem is not None
    assert problem.kind == ProblemKind.SEAL_BROKEN
    assert "block 2" in problem.detail


async def test_two_sealers_at_once_seal_each_event_once(store: PostgresEventStore) -> None:
    sealers = [Sealer(store.pool, store.schema, block_size=5) for _ in range(2)]
    counts = await asyncio.gather(*(s.seal_once() for s in sealers))
    assert sum(counts) == 12
    report = await verify(store.pool, store.schema)
    assert report.ok, report.problems
    assert report.unsealed == 0


# ------------------------------------------------------------------------ `qinqing audit verify`


@pytest.fixture
def audit_verify(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Awaitable[Result]]:
    """`qinqing audit verify ARGS` over the given schemas as the services, run as a command
    (on a thread of its own: it runs its own event loop)."""
    monkeypatch.setattr(admin, "configure_logging", lambda *_: None)

    async def invoke(schemas: tuple[str, ...], *args: str) -> Result:
        monkeypatch.setattr(admin, "SERVICES", schemas)
        return await asyncio.to_thread(CliRunner().invoke, cli.app, ["audit", "verify", *args])

    return invoke


@pytest.mark.parametrize("args", [(), ("--seal",)], ids=["verify", "seal-and-verify"])
async def test_verify_tells_a_service_never_migrated_apart_from_tampering(
    store: PostgresEventStore,
    audit_verify: Callable[..., Awaitable[Result]],
    args: tuple[str, ...],
) -> None:
    never = f"{store.schema}_none"  # voucher, proxy and audit have no schema of their own yet
    result = await audit_verify((store.schema, never), *args)
    assert result.exit_code == 0, result.output
    checked, not_deployed = result.output.splitlines()
    # (how many are sealed depends on the cluster's read horizon, shared with other writers)
    assert checked.startswith(f"{store.schema}: ok (12 events, ")
    assert not_deployed == f"{never}: no schema yet (not migrated): nothing to verify"


async def test_verify_names_the_log_tables_of_a_migrated_schema_that_were_dropped(
    store: PostgresEventStore, audit_verify: Callable[..., Awaitable[Result]]
) -> None:
    await store.pool.execute(f"DROP TABLE {store.schema}.seal_blocks")
    result = await audit_verify((store.schema,), "--seal")
    assert isinstance(result.exception, SystemExit), result.exception  # an answer, no crash
    assert result.exit_code == 1
    assert result.output.startswith(f"{store.schema}: TAMPERED: ")
    assert "seal_blocks of a migrated schema are gone" in result.output
