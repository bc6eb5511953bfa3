"""The review queue on the real PostgreSQL: pages oldest first across a reviewer's regions
without repeats, each region level read from its own index even with 100,000 open cases in
20 regions, the search through the lookup index, and a rebuilt case table equal to the live one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import uuid4

import asyncpg
import pytest

from services.review.commands import NewCase
from services.review.events import CaseType, RejectionReason, ReviewMode
from services.review.handlers import ReviewDeps, ReviewHandlers
from services.review.projections import CaseTable
from services.review.queries import ReviewViews, reviewer_prefixes
from services.runtime.blobs import InMemoryBlobStore
from services.runtime.decider import CommandContext
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pgstore import PostgresEventStore
from services.runtime.pii import lookup_hash
from services.runtime.principal import Principal, Role
from services.runtime.projection import ProjectionRunner

pytestmark = pytest.mark.integration

KEY = b"L" * 32
START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
REGIONS = (
    "360102", "360103", "360104", "360105", "360111", "360121", "360702", "360703", "360721",
    "360722", "110101", "110102", "110105", "110106", "110107", "110108", "110109", "110111",
    "110112", "110113",
)  # fmt: skip
ID_NUMBER = "360426199101010047"


def reviewer(*regions: str) -> Principal:
    return Principal(f"rev-{uuid4().hex[:6]}", Role.REVIEWER, regions)


@pytest.fixture
async def views(db_pool: asyncpg.Pool, pg_schema: str) -> ReviewViews:
    async with db_pool.acquire() as proxy:
        await migrate(cast(asyncpg.Connection, proxy), pg_schema, service_migrations("review"))
    return ReviewViews(db_pool, pg_schema, KEY)


async def handlers_on(pool: asyncpg.Pool, schema: str, views: ReviewViews) -> ReviewHandlers:
    return ReviewHandlers(ReviewDeps(PostgresEventStore(pool, schema), InMemoryBlobStore(), views))


def ctx(minute: int) -> CommandContext:
    return CommandContext(uuid4(), START + timedelta(minutes=minute), "corr", "binding")


def new_case(n: int, region: str, case_type: CaseType = CaseType.MEMBER_BINDING) -> NewCase:
    return NewCase(case_type, f"req-{n}", region, f"p_holder_{n}", f"p_member_{n}", None, None, ())


async def test_pages_run_oldest_first_across_the_reviewers_regions_without_repeats(
    views: ReviewViews, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    handlers = await handlers_on(db_pool, pg_schema, views)
    for n in range(24):  # newest first in the log, so the order is the queue's own doing
        region = ("360102", "360702", "110101")[n % 3]
        case_type = CaseType.FILING if n % 4 == 0 else CaseType.MEMBER_BINDING
        await handlers.open_case(new_case(n, region, case_type), ctx(100 - n))
    await ProjectionRunner(db_pool, pg_schema, CaseTable(pg_schema)).catch_up()

    # 360000 covers 360100: the overlap is read once.
    jiangxi = reviewer("360100", "360000")
    assert reviewer_prefixes(jiangxi) == ["36"]
    now = START + timedelta(hours=3)
    seen: list[str] = []
    page = await views.queue(jiangxi, now, limit=5)
    while True:
        seen += [i.case_id for i in page.items]
        if page.next_after is None:
            break
        page = await views.queue(jiangxi, now, after=page.next_after, limit=5)
    rows = await db_pool.fetch(
        f"SELECT case_id FROM {pg_schema}.cases WHERE region LIKE '36%' ORDER BY opened_at"
    )
    assert seen == [r["case_id"] for r in rows]
    assert len(seen) == 16

    two = reviewer("360100", "110000")
    everything = await views.queue(two, now, limit=100)
    assert len(everything.items) == 16  # Nanchang's 8 and Beijing's 8, not Ganzhou's
    assert [i.opened_at for i in everything.items] == sorted(i.opened_at for i in everything.items)
    filings = await views.queue(two, now, case_type=CaseType.FILING, limit=100)
    assert {i.case_type for i in filings.items} == {CaseType.FILING}
    assert len(filings.items) == 4
    oldest = everything.items[0]
    assert oldest.age == now - oldest.opened_at
    assert oldest.member.startswith("p_memb")
    assert "…" in oldest.member


async def seed(pool: asyncpg.Pool, schema: str, count: int) -> None:
    """`count` cases straight into the read model (a seventh of them decided), 20 regions."""
    await pool.execute(
        f"INSERT INTO {schema}.cases (case_id, case_type, request_id, region, holder, member,"
        " status, opened_at, policy_id, policy_version, mode)"
        " SELECT 'c' || g, 'member_binding', 'r' || g, ($1::text[])[1 + g % 20], 'p_h' || g,"
        "        'p_m' || g, CASE WHEN g % 7 = 0 THEN 'approved' ELSE 'open' END,"
        "        $2::timestamptz - make_interval(secs => g), '*/member_binding', 0, 'manual'"
        " FROM generate_series(1, $3) AS g",
        list(REGIONS),
        START,
        count,
    )
    await pool.execute(
        f"INSERT INTO {schema}.person_lookups (pseudonym, id_lookup)"
        " SELECT 'p_m' || g, md5(g::text) || md5(g::text) FROM generate_series(1, $1) AS g",
        count,
    )
    await pool.execute(f"ANALYZE {schema}.cases; ANALYZE {schema}.person_lookups")


def plan_nodes(plan: Any) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


async def explain(pool: asyncpg.Pool, sql: str, *args: Any) -> list[dict[str, Any]]:
    (row,) = await pool.fetch(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    return plan_nodes(json.loads(row[0])[0]["Plan"])


@pytest.mark.parametrize(
    ("regions", "indexes"),
    [
        (("360102",), {"cases_open_region"}),
        (("360100",), {"cases_open_city"}),
        (("360000",), {"cases_open_province"}),
        (("110000", "360100", "360702"), {"cases_open_province", "cases_open_city",
                                          "cases_open_region"}),
    ],
    ids=["district", "city", "province", "three-levels"],
)  # fmt: skip
async def test_with_100000_open_cases_each_region_level_reads_one_ordered_index_range(
    views: ReviewViews, db_pool: asyncpg.Pool, pg_schema: str, regions: tuple[str, ...],
    indexes: set[str],
) -> None:  # fmt: skip
    await seed(db_pool, pg_schema, 116_666)  # 100,000 open, 16,666 decided
    prefixes = reviewer_prefixes(reviewer(*regions))
    start = datetime(1, 1, 1, tzinfo=UTC)
    nodes = await explain(db_pool, views.queue_sql(prefixes), None, start, "", 21, *prefixes)
    scans = [n for n in nodes if "Scan" in n["Node Type"]]
    assert {n["Node Type"] for n in scans} == {"Index Scan"}  # no sequential scan, no sort
    assert {n["Index Name"] for n in scans} == indexes
    page = await views.queue(reviewer(*regions), START, limit=20)
    assert len(page.items) == 20
    assert page.next_after is not None


async def test_the_search_reads_the_lookup_index_then_the_persons_cases(
    views: ReviewViews, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    await seed(db_pool, pg_schema, 116_666)
    digest = lookup_hash(KEY, ID_NUMBER)
    await db_pool.execute(
        f"UPDATE {pg_schema}.person_lookups SET id_lookup = $1 WHERE pseudonym = 'p_m22'", digest
    )
    found = await views.search(reviewer("360100"), ID_NUMBER, START)
    assert [i.case_id for i in found.items] == ["c22"]  # in REGIONS[22 % 20], 360104
    assert (await views.search(reviewer("110000"), ID_NUMBER, START)).items == []
    lookup = await explain(
        db_pool, f"SELECT pseudonym FROM {pg_schema}.person_lookups WHERE id_lookup = $1", digest
    )
    assert {n.get("Index Name") for n in lookup if "Scan" in n["Node Type"]} == {
        "person_lookups_by_hash"
    }
    cases = await explain(
        db_pool,
        f"SELECT * FROM {pg_schema}.cases WHERE status = 'open'"
        " AND (holder = ANY($1) OR member = ANY($1))",
        ["p_m22"],
    )
    used = {n.get("Index Name") for n in cases if "Index" in n["Node Type"]}
    assert used == {"cases_open_holder", "cases_open_member"}


async def test_operators_statistics_count_open_cases_per_region_and_the_last_hours_decisions(
    views: ReviewViews, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    handlers = await handlers_on(db_pool, pg_schema, views)
    for n, region in enumerate(("360102", "360102", "110101")):
        await handlers.open_case(new_case(n, region), ctx(n))
    await handlers.change_policy("11", CaseType.MEMBER_BINDING, ReviewMode.AUTO_APPROVE, ctx(5))
    await handlers.open_case(new_case(9, "110102"), ctx(10))
    case_id = (await handlers.open_case(new_case(3, "360102"), ctx(11))).case_id
    await handlers.approve(case_id, reviewer("360100"), ctx(12))
    await ProjectionRunner(db_pool, pg_schema, CaseTable(pg_schema)).catch_up()
    stats = await views.stats(START + timedelta(minutes=30))
    assert [(r.region, r.open_cases) for r in stats.regions] == [("110101", 1), ("360102", 2)]
    assert stats.regions[1].oldest_age == timedelta(minutes=30)
    assert (stats.open_cases, stats.decisions_last_hour, stats.automatic_last_hour) == (3, 2, 1)
    later = await views.stats(START + timedelta(hours=2))
    assert later.decisions_last_hour == 0


async def test_the_rebuilt_case_table_equals_the_live_one(
    views: ReviewViews, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    handlers = await handlers_on(db_pool, pg_schema, views)
    nanchang = reviewer("360100")
    for n in range(6):
        await handlers.open_case(new_case(n, "360102"), ctx(n))
    # Opening again (a redelivery) returns the case as it is and records nothing.
    ids = [(await handlers.open_case(new_case(n, "360102"), ctx(n))).case_id for n in range(3)]
    await handlers.claim(ids[0], nanchang, ctx(10))
    await handlers.approve(ids[1], nanchang, ctx(11))
    await handlers.reject(ids[2], nanchang, RejectionReason.OTHER, "", ctx(12))
    runner = ProjectionRunner(db_pool, pg_schema, CaseTable(pg_schema))
    await runner.catch_up()
    query = f"SELECT * FROM {pg_schema}.cases ORDER BY case_id"
    live = [dict(r) for r in await db_pool.fetch(query)]
    assert await runner.rebuild() == 9
    assert [dict(r) for r in await db_pool.fetch(query)] == live
