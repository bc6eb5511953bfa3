"""The reviewers' queue (by region, oldest first, searchable by ID number), operators' queue
statistics, and the escalation timer's overdue cases: queries on the case table, in PostgreSQL
or in memory."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

from contracts.id_number import normalise
from services.review.errors import CursorError
from services.review.events import CaseType, Check
from services.review.policy import region_prefix
from services.review.projections import PERSON_STREAM_PREFIX
from services.runtime.events import EventRecord, check_schema_name
from services.runtime.pii import lookup_hash
from services.runtime.principal import Principal

MAX_PAGE = 100
_COLUMNS = (
    "case_id, case_type, region, holder, member, opened_at, claimed_by, escalated_at, failed_checks"
)
_LEVEL = {2: "province", 4: "city", 6: "region"}  # a region prefix's length -> its column
_START = (datetime.fromisoformat("0001-01-01T00:00:00+00:00"), "")


def mask_pseudonym(pseudonym: str) -> str:
    """Enough to tell two persons apart on a screen, not enough to look one up."""
    return pseudonym if len(pseudonym) <= 10 else f"{pseudonym[:6]}…{pseudonym[-4:]}"


def reviewer_prefixes(reviewer: Principal) -> list[str]:
    """The region prefixes a reviewer covers, without those inside another of theirs."""
    prefixes = sorted({region_prefix(r) for r in reviewer.regions}, key=len)
    kept: list[str] = []
    for prefix in prefixes:
        if not any(prefix.startswith(k) for k in kept):
            kept.append(prefix)
    return kept


@dataclass(frozen=True)
class QueueItem:
    case_id: str
    case_type: CaseType
    region: str
    holder: str  # masked pseudonyms
    member: str
    opened_at: datetime
    age: timedelta
    claimed_by: str | None
    escalated: bool
    failed_checks: tuple[Check, ...]


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem]
    next_after: str | None  # pass as `after` for the next page; None on the last one


@dataclass(frozen=True)
class RegionStats:
    region: str
    open_cases: int
    escalated: int
    oldest_opened_at: datetime
    oldest_age: timedelta


@dataclass(frozen=True)
class QueueStats:
    regions: list[RegionStats]
    open_cases: int
    decisions_last_hour: int
    automatic_last_hour: int  # of those, by a policy


def encode_cursor(opened_at: datetime, case_id: str) -> str:
    raw = json.dumps([opened_at.isoformat(), case_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, case_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(case_id)
    except (ValueError, TypeError, binascii.Error):
        raise CursorError from None


class CaseQueries(Protocol):
    """What the API and the console page ask of the case table (ReviewViews on PostgreSQL)."""

    async def queue(
        self,
        reviewer: Principal,
        now: datetime,
        *,
        case_type: CaseType | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> QueuePage: ...

    async def search(
        self,
        reviewer: Principal,
        id_number: str,
        now: datetime,
        *,
        case_type: CaseType | None = None,
        limit: int = 20,
    ) -> QueuePage: ...

    async def stats(self, now: datetime) -> QueueStats: ...


class ReviewViews:
    """Queries on `<schema>.cases` and `<schema>.person_lookups` (migration 0001)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, lookup_key: bytes) -> None:
        self.pool, self.schema, self.lookup_key = pool, check_schema_name(schema), lookup_key

    async def queue(
        self,
        reviewer: Principal,
        now: datetime,
        *,
        case_type: CaseType | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> QueuePage:
        """Open cases in the reviewer's regions, oldest first; `after` is a page's next_after."""
        limit = max(1, min(limit, MAX_PAGE))
        at, case_id = _START if after is None else decode_cursor(after)
        prefixes = reviewer_prefixes(reviewer)
        if not prefixes:
            return QueuePage([], None)
        sql = self.queue_sql(prefixes)
        args = (case_type, at, case_id, limit + 1, *prefixes)
        rows = await self.pool.fetch(sql, *args)
        return _page(rows, now, limit)

    def queue_sql(self, prefixes: list[str]) -> str:
        """The queue query for these prefixes: $1 case type or NULL, $2/$3 the cursor, $4 the
        page size plus one, then one region prefix each. Every prefix is one ordered index
        range, cut at the page size; the ranges are merged."""
        parts = [
            f"(SELECT {_COLUMNS} FROM {self.schema}.cases"
            f" WHERE status = 'open' AND {_LEVEL[len(prefix)]} = ${n + 5}"
            "   AND ($1::text IS NULL OR case_type = $1)"
            "   AND (opened_at, case_id) > ($2, $3)"
            " ORDER BY opened_at, case_id LIMIT $4)"
            for n, prefix in enumerate(prefixes)
        ]
        merged = " UNION ALL ".join(parts)
        return f"SELECT * FROM ({merged}) AS q ORDER BY opened_at, case_id LIMIT $4"

    async def search(
        self,
        reviewer: Principal,
        id_number: str,
        now: datetime,
        *,
        case_type: CaseType | None = None,
        limit: int = 20,
    ) -> QueuePage:
        """Open cases in the reviewer's regions of the person with this ID number (as holder
        or member), found through its keyed hash: the number itself is never stored."""
        digest = lookup_hash(self.lookup_key, normalise(id_number))
        prefixes = reviewer_prefixes(reviewer)
        by_level = {
            column: [p for p in prefixes if len(p) == length] for length, column in _LEVEL.items()
        }
        persons = [
            r["pseudonym"]
            for r in await self.pool.fetch(
                f"SELECT pseudonym FROM {self.schema}.person_lookups WHERE id_lookup = $1", digest
            )
        ]
        if not persons:
            return QueuePage([], None)
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM {self.schema}.cases"
            " WHERE status = 'open' AND (holder = ANY($1) OR member = ANY($1))"
            "   AND (province = ANY($2) OR city = ANY($3) OR region = ANY($4))"
            "   AND ($5::text IS NULL OR case_type = $5)"
            " ORDER BY opened_at, case_id LIMIT $6",
            persons,
            by_level["province"],
            by_level["city"],
            by_level["region"],
            case_type,
            max(1, min(limit, MAX_PAGE)),
        )
        return QueuePage([_item(r, now) for r in rows], None)

    async def stats(self, now: datetime) -> QueueStats:
        """Open cases, escalated ones and the oldest per region; decisions in the last hour."""
        rows = await self.pool.fetch(
            "SELECT region, count(*) AS open_cases, min(opened_at) AS oldest,"
            " count(*) FILTER (WHERE escalated_at IS NOT NULL) AS escalated"
            f" FROM {self.schema}.cases WHERE status = 'open' GROUP BY region ORDER BY region"
        )
        decided = await self.pool.fetchrow(
            "SELECT count(*) AS decisions,"
            " count(*) FILTER (WHERE closed_by LIKE 'policy:%') AS automatic"
            f" FROM {self.schema}.cases WHERE closed_by IS NOT NULL AND closed_at > $1",
            now - timedelta(hours=1),
        )
        assert decided is not None
        regions = [
            RegionStats(
                r["region"], r["open_cases"], r["escalated"], r["oldest"], now - r["oldest"]
            )
            for r in rows
        ]
        return QueueStats(
            regions,
            sum(r.open_cases for r in regions),
            decided["decisions"],
            decided["automatic"],
        )

    async def overdue(self, opened_before: datetime, limit: int) -> list[str]:
        """Open, not yet escalated cases opened before the cutoff, oldest first."""
        rows = await self.pool.fetch(
            f"SELECT case_id FROM {self.schema}.cases"
            " WHERE status = 'open' AND escalated_at IS NULL AND opened_at <= $1"
            " ORDER BY opened_at LIMIT $2",
            opened_before,
            limit,
        )
        return [r["case_id"] for r in rows]


def _item(row: Mapping[str, Any] | asyncpg.Record, now: datetime) -> QueueItem:
    return QueueItem(
        case_id=row["case_id"],
        case_type=CaseType(row["case_type"]),
        region=row["region"],
        holder=mask_pseudonym(row["holder"]),
        member=mask_pseudonym(row["member"]),
        opened_at=row["opened_at"],
        age=max(now - row["opened_at"], timedelta(0)),
        claimed_by=row["claimed_by"],
        escalated=row["escalated_at"] is not None,
        failed_checks=tuple(Check(c) for c in row["failed_checks"]),
    )


def _page(
    rows: Sequence[Mapping[str, Any]] | Sequence[asyncpg.Record], now: datetime, limit: int
) -> QueuePage:
    items = [_item(r, now) for r in rows[:limit]]
    more = len(rows) > limit
    last = items[-1] if items and more else None
    return QueuePage(items, None if last is None else encode_cursor(last.opened_at, last.case_id))


# The case columns an event sets, read from its data: what CaseTable's statements write.
_CASE_UPDATES: dict[str, dict[str, str]] = {
    "ReviewCaseClaimed": {"claimed_by": "claimed_by"},
    "MaterialsApproved": {"closed_by": "decided_by", "closed_at": "decided_at"},
    "MaterialsRejected": {"closed_by": "decided_by", "closed_at": "decided_at"},
    "ReviewCaseEscalated": {"escalated_at": "escalated_at"},
    "ReviewCaseWithdrawn": {"closed_at": "withdrawn_at"},
}
_STATUS = {"MaterialsApproved": "approved", "MaterialsRejected": "rejected",
           "ReviewCaseWithdrawn": "withdrawn"}  # fmt: skip
_TIMES = frozenset({"closed_at", "escalated_at"})


class InMemoryReviewViews:
    """Same contract as ReviewViews, for unit tests; `apply` does what the two projections
    behind it (CaseTable, PersonLookups) do to their tables."""

    def __init__(self, lookup_key: bytes) -> None:
        self.lookup_key = lookup_key
        self.cases: dict[str, dict[str, Any]] = {}
        self.lookups: dict[str, str] = {}  # pseudonym -> id lookup

    async def apply(self, conn: object, event: EventRecord) -> None:
        d = event.data
        if event.type == "ReviewCaseOpened":
            row = {k: d[k] for k in ("case_id", "case_type", "region", "holder", "member")}
            opened_at = datetime.fromisoformat(d["opened_at"])
            row |= {"status": "open", "opened_at": opened_at, "claimed_by": None,
                    "escalated_at": None, "closed_at": None, "closed_by": None,
                    "failed_checks": d.get("failed_checks", [])}  # fmt: skip
            self.cases.setdefault(d["case_id"], row)
        elif event.type in _CASE_UPDATES and d["case_id"] in self.cases:
            row = self.cases[d["case_id"]]
            for column, key in _CASE_UPDATES[event.type].items():
                row[column] = datetime.fromisoformat(d[key]) if column in _TIMES else d[key]
            row["status"] = _STATUS.get(event.type, row["status"])
        elif event.type == "PersonRegistered" and d.get("id_lookup"):
            self.lookups[d["pseudonym"]] = d["id_lookup"]
        elif event.type == "PersonErased":
            self.lookups.pop(event.stream_id.removeprefix(PERSON_STREAM_PREFIX), None)

    def _open(self, reviewer: Principal, case_type: CaseType | None) -> list[dict[str, Any]]:
        """The reviewer's open cases, oldest first."""
        prefixes = tuple(reviewer_prefixes(reviewer))
        return sorted(
            (
                row
                for row in self.cases.values()
                if row["status"] == "open"
                and row["region"].startswith(prefixes)
                and case_type in (None, row["case_type"])
            ),
            key=lambda row: (row["opened_at"], row["case_id"]),
        )

    async def queue(
        self,
        reviewer: Principal,
        now: datetime,
        *,
        case_type: CaseType | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> QueuePage:
        limit = max(1, min(limit, MAX_PAGE))
        cursor = _START if after is None else decode_cursor(after)
        rows = [
            r for r in self._open(reviewer, case_type) if (r["opened_at"], r["case_id"]) > cursor
        ]
        return _page(rows[: limit + 1], now, limit)

    async def search(
        self,
        reviewer: Principal,
        id_number: str,
        now: datetime,
        *,
        case_type: CaseType | None = None,
        limit: int = 20,
    ) -> QueuePage:
        digest = lookup_hash(self.lookup_key, normalise(id_number))
        persons = {p for p, lookup in self.lookups.items() if lookup == digest}
        rows = [r for r in self._open(reviewer, case_type) if {r["holder"], r["member"]} & persons]
        return QueuePage([_item(r, now) for r in rows[: max(1, min(limit, MAX_PAGE))]], None)

    async def stats(self, now: datetime) -> QueueStats:
        open_by_region: dict[str, list[dict[str, Any]]] = {}
        for row in self.cases.values():
            if row["status"] == "open":
                open_by_region.setdefault(row["region"], []).append(row)
        regions = []
        for region, rows in sorted(open_by_region.items()):
            oldest = min(r["opened_at"] for r in rows)
            escalated = sum(r["escalated_at"] is not None for r in rows)
            regions.append(RegionStats(region, len(rows), escalated, oldest, now - oldest))
        decided = [
            r["closed_by"]
            for r in self.cases.values()
            if r["closed_by"] is not None and r["closed_at"] > now - timedelta(hours=1)
        ]
        automatic = sum(by.startswith("policy:") for by in decided)
        return QueueStats(regions, sum(r.open_cases for r in regions), len(decided), automatic)

    async def overdue(self, opened_before: datetime, limit: int) -> list[str]:
        due = sorted(
            (r["opened_at"], r["case_id"])
            for r in self.cases.values()
            if r["status"] == "open" and r["escalated_at"] is None
            and r["opened_at"] <= opened_before
        )  # fmt: skip
        return [case_id for _, case_id in due[:limit]]


if TYPE_CHECKING:  # mypy proves that the adapter and the fake both implement the ports
    from services.review.handlers import OverdueCases

    _queries: tuple[type[CaseQueries], ...] = (ReviewViews, InMemoryReviewViews)
    _timer: tuple[type[OverdueCases], ...] = (ReviewViews, InMemoryReviewViews)
