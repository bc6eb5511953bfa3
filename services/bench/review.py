"""Review phase: the reviewers' queue and search-by-ID-number latency over 100,000 open cases in
20 regions, through the same query functions the API and the console call."""

from __future__ import annotations

import contextlib
import random
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any, cast

import asyncpg

from contracts.id_number import check_char
from services.bench.common import BenchConfig, Say, now
from services.review.events import CaseType
from services.review.queries import QueuePage, ReviewViews
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pii import lookup_hash
from services.runtime.principal import Principal, Role

# (comparison, limit) of each figure; both are p99 latencies of one query, in ms.
REVIEW_TARGETS: dict[str, tuple[str, float]] = {
    "review_queue_p99_ms": ("<=", 50.0),
    "review_search_p99_ms": ("<=", 50.0),
}
REVIEW_FIGURES = tuple(REVIEW_TARGETS)

# 20 districts: 10 in Jiangxi (5 Nanchang, 3 Ganzhou, 2 Jiujiang), 10 in Beijing.
REGIONS = (
    "360102", "360103", "360104", "360105", "360111", "360702", "360703", "360721", "360402",
    "360403", "110101", "110102", "110105", "110106", "110107", "110108", "110109", "110111",
    "110112", "110113",
)  # fmt: skip
# Reviewers of a city (the queue merges nothing: one index range) and of a province.
SCOPES = {"city": ("360100", "360700", "110100"), "province": ("360000", "110000")}
_PAGE = 20  # what the console shows and the API's default page
_WARMUP = 20  # untimed queries of each kind first (plans, buffers, connections)
_SEED = 20_261_125


def _id_number(n: int) -> str:
    """A well-formed resident ID number for person n (made up; never printed)."""
    born = date(1940, 1, 1) + timedelta(days=(n * 7_919) % 25_000)
    body = f"{REGIONS[n % len(REGIONS)]}{born:%Y%m%d}{n % 1_000:03d}"
    return body + check_char(body)


async def _seed(pool: asyncpg.Pool, schema: str, open_cases: int, key: bytes) -> list[str]:
    """Open cases (a tenth filings, a tenth registrations) of holders with two cases each,
    plus a seventh as many decided ones, straight into the case table by one INSERT ...
    SELECT; the persons' lookup hashes by COPY. Returns the seeded persons' ID numbers."""
    holders, total = open_cases // 2, open_cases + open_cases // 7
    await pool.execute(
        f"INSERT INTO {schema}.cases (case_id, case_type, request_id, region, holder, member,"
        " status, opened_at, closed_at, closed_by, policy_id, policy_version, mode)"
        " SELECT md5('case' || g), CASE g % 10 WHEN 0 THEN 'filing'"
        "        WHEN 5 THEN 'resident_registration' ELSE 'member_binding' END,"
        "        md5('request' || g), ($1::text[])[1 + g % 20], 'p_h' || g % $3, 'p_m' || g,"
        "        CASE WHEN g > $4 THEN 'approved' ELSE 'open' END,"
        "        $2::timestamptz - make_interval(secs => (g * 7919) % 2592000),"
        "        CASE WHEN g > $4 THEN $2::timestamptz END, CASE WHEN g > $4 THEN 'rev-1' END,"
        "        '*/member_binding', 0, 'manual'"
        " FROM generate_series(1, $5) AS g",
        list(REGIONS), now(), holders, open_cases, total,
    )  # fmt: skip
    numbers = [_id_number(n) for n in range(holders + total)]
    pseudonyms = [f"p_h{n}" for n in range(holders)] + [f"p_m{g}" for g in range(1, total + 1)]
    records = [(p, lookup_hash(key, n)) for p, n in zip(pseudonyms, numbers, strict=True)]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "person_lookups",
            schema_name=schema,
            records=records,
            columns=["pseudonym", "id_lookup"],
        )
    await pool.execute(f"ANALYZE {schema}.cases; ANALYZE {schema}.person_lookups")
    return numbers


def _summary_ms(seconds: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {"p50": round(cuts[49] * 1000, 2), "p99": round(cuts[98] * 1000, 2)}


Query = Callable[[Principal, int], Awaitable[QueuePage]]


async def _measure(
    reviewers: dict[str, list[Principal]], query: Query, count: int
) -> tuple[dict[str, list[float]], int]:
    """`count` timed queries, one at a time, alternating the scopes; seconds per scope and
    how many answered with at least one case."""
    for n in range(_WARMUP):
        for scoped in reviewers.values():
            await query(scoped[n % len(scoped)], n)
    timings: dict[str, list[float]] = {scope: [] for scope in reviewers}
    found = 0
    for n in range(count):
        scope = tuple(reviewers)[n % len(reviewers)]
        reviewer = reviewers[scope][n // len(reviewers) % len(reviewers[scope])]
        began = time.perf_counter()
        page = await query(reviewer, n)
        timings[scope].append(time.perf_counter() - began)
        found += bool(page.items)
    return timings, found


def _figure(
    key: str, timings: dict[str, list[float]], open_cases: int, definition: str, **extra: Any
) -> dict[str, Any]:
    every = [t for scope in timings.values() for t in scope]
    summary = _summary_ms(every)
    op, limit = REVIEW_TARGETS[key]
    return {
        "value": summary["p99"],
        "unit": "ms",
        "target": f"{op} {limit:g}",
        "meets_target": summary["p99"] <= limit,
        "definition": definition,
        "latency_ms": summary,
        "by_scope_ms": {scope: _summary_ms(t) for scope, t in timings.items()},
        "queries": len(every),
        "open_cases": open_cases,
        "regions": len(REGIONS),
        **extra,
    }


async def review_figures(
    pool: asyncpg.Pool, schema: str, cfg: BenchConfig, say: Say
) -> dict[str, Any]:
    """`review_queue_p99_ms` and `review_search_p99_ms`, in `schema` (created, then dropped)."""
    key = secrets.token_bytes(32)  # this run's lookup key: the hashes mean nothing elsewhere
    try:
        async with pool.acquire() as conn:
            await migrate(cast(asyncpg.Connection, conn), schema, service_migrations("review"))
        began = time.perf_counter()
        numbers = await _seed(pool, schema, cfg.review_open_cases, key)
        seeded_s = time.perf_counter() - began
        say(f"review: {cfg.review_open_cases:,} open cases in {len(REGIONS)} regions seeded"
            f" in {seeded_s:.1f} s")  # fmt: skip
        views = ReviewViews(pool, schema, key)
        (queued, queue_hits), (searched, search_hits) = await _queries(
            views, numbers, cfg.review_queries
        )
    finally:
        with contextlib.suppress(Exception):
            await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    scale = (
        f"{cfg.review_open_cases:,} open cases (and {cfg.review_open_cases // 7:,} decided) in"
        f" {len(REGIONS)} districts of 2 provinces, seeded by INSERT ... SELECT into the case"
        " table of a fresh schema (not through the projection); reviewers of a city"
        f" ({', '.join(SCOPES['city'])}) and of a province ({', '.join(SCOPES['province'])}),"
        " alternating, one query at a time"
    )
    result = {
        "review_queue_p99_ms": _figure(
            "review_queue_p99_ms",
            queued,
            cfg.review_open_cases,
            f"p99 of ReviewViews.queue (the API's and console's query; pages of {_PAGE}, every"
            " other one the next page, every 4th filtered by case type) over " + scale,
            pages_with_cases=queue_hits,
        ),
        "review_search_p99_ms": _figure(
            "review_search_p99_ms",
            searched,
            cfg.review_open_cases,
            "p99 of ReviewViews.search by a seeded person's ID number (keyed hash -> pseudonyms"
            " -> their open cases in the reviewer's regions) over " + scale,
            answers_with_cases=search_hits,
        ),
    }
    say(
        "review: queue p50 {:.2f} ms, p99 {:.2f} ms; search p50 {:.2f} ms, p99 {:.2f} ms".format(
            *result["review_queue_p99_ms"]["latency_ms"].values(),
            *result["review_search_p99_ms"]["latency_ms"].values(),
        )
    )
    return result


async def _queries(
    views: ReviewViews, numbers: list[str], count: int
) -> tuple[tuple[dict[str, list[float]], int], tuple[dict[str, list[float]], int]]:
    """`count` timed queue queries, then `count` searches by a seeded ID number: seconds per
    scope and how many answered with at least one case, of each."""
    reviewers = {
        scope: [Principal(f"rev-{r}", Role.REVIEWER, (r,)) for r in regions]
        for scope, regions in SCOPES.items()
    }
    at, rng = now(), random.Random(_SEED)  # noqa: S311 - picks test data, not a secret
    types = (None, None, None, CaseType.FILING)  # every 4th queue query filtered by type
    cursors: dict[str, str | None] = {}

    async def queue(reviewer: Principal, n: int) -> QueuePage:
        # Every other query asks for the next page after that reviewer's last first page.
        after = cursors.get(reviewer.subject) if n % 2 else None
        page = await views.queue(
            reviewer, at, case_type=types[n % len(types)], after=after, limit=_PAGE
        )
        if after is None:
            cursors[reviewer.subject] = page.next_after
        return page

    async def search(reviewer: Principal, _: int) -> QueuePage:
        number = numbers[rng.randrange(len(numbers))]
        return await views.search(reviewer, number, at, limit=_PAGE)

    return (
        await _measure(reviewers, queue, count),
        await _measure(reviewers, search, count),
    )
