"""The binding read models: the holder's family view, each member's holders, and as-of queries.

A family-view row is one fold over its request's events, `evolve_view`, built on the domain's
own `evolve`; the SQL projection and the as-of query both run it, so they cannot disagree.
The projection keeps the domain state beside each row (`domain_state`) and folds on from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import takewhile
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, TypeAdapter

from contracts.vocabulary import BindingKind, Relation
from services.binding.domain import BindRequest, Holder, Status, Step, evolve, holder_stream
from services.binding.events import (
    BindingEvent,
    BindingRejected,
    BindingRejectionReason,
    MemberBindRequested,
    binding_codec,
)
from services.binding.rules import Method
from services.runtime.events import EventRecord, Position, RecordedEvent, check_schema_name
from services.runtime.pgstore import Executor, PostgresEventStore

_HOLDER_STREAM = holder_stream("")  # the prefix of every holder's stream id


class ViewStatus(StrEnum):
    """A request's status as the holder's app shows it."""

    AWAITING_MATERIALS = "awaiting_materials"  # letter not signed or pages not submitted
    PENDING_REVIEW = "pending_review"
    PENDING_FACE = "pending_face"  # review passed or not needed
    PENDING_REVIEW_AND_FACE = "pending_review_and_face"
    BOUND = "bound"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REVOKED = "revoked"


class FamilyMember(BaseModel):
    """One bind request of a holder's family view; `since` is when `status` was reached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    holder: str
    request_id: str
    member: str
    relation: Relation | None  # None only before the request's terms are projected
    kind: BindingKind
    method: Method
    status: ViewStatus
    waiting_for: tuple[Step, ...]  # in the order the flow meets them; empty once finished
    rejection_reason: BindingRejectionReason | None
    rejection_detail: str | None
    requested_at: datetime
    since: datetime
    updated_at: datetime


class MemberHolder(BaseModel):
    """A holder that has the member bound now, for one kind of binding."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    member: str
    kind: BindingKind
    holder: str
    request_id: str
    since: datetime


@dataclass(frozen=True)
class RequestView:
    """The fold's state for one request: the domain's request and the row the app sees."""

    request: BindRequest
    shown: FamilyMember


_FINISHED = {
    Status.BOUND: ViewStatus.BOUND,
    Status.REJECTED: ViewStatus.REJECTED,
    Status.EXPIRED: ViewStatus.EXPIRED,
    Status.REVOKED: ViewStatus.REVOKED,
}


def _status(request: BindRequest) -> ViewStatus:
    finished = _FINISHED.get(request.status)
    if finished is not None:
        return finished
    waiting = request.waiting_for
    if Step.COMMITMENT_LETTER in waiting or Step.MATERIALS in waiting:
        return ViewStatus.AWAITING_MATERIALS
    if Step.FACE in waiting:
        return (
            ViewStatus.PENDING_REVIEW_AND_FACE
            if Step.REVIEW in waiting
            else ViewStatus.PENDING_FACE
        )
    # Waiting for review, or for nothing: the domain binds in the same append as the last
    # outcome, so a pending request awaits nothing only when a batch ends inside an append.
    return ViewStatus.PENDING_REVIEW


def _waiting_for(request: BindRequest) -> tuple[Step, ...]:
    if request.status is not Status.PENDING:
        return ()  # the domain still lists what a rejected or expired request lacked
    return Step.in_flow_order(request.waiting_for)


def evolve_view(view: RequestView | None, event: BindingEvent, at: datetime) -> RequestView:
    """The request's view after `event`, recorded at `at`; `view` is None before its request."""
    if view is None:
        if not isinstance(event, MemberBindRequested):
            raise LookupError(f"{type(event).__name__} for request {event.request_id} before it")
        previous, state = None, Holder()
    else:
        previous = view.shown
        state = Holder(previous.holder, {previous.request_id: view.request})
    after = evolve(state, event)
    request = after.requests[event.request_id]
    status = _status(request)
    reason: BindingRejectionReason | None = None
    detail: str | None = None
    if isinstance(event, BindingRejected):
        reason, detail = event.reason, event.detail
    elif previous is not None:
        reason, detail = previous.rejection_reason, previous.rejection_detail
    shown = FamilyMember(
        holder=after.holder,
        request_id=request.request_id,
        member=request.member,
        relation=request.relation,
        kind=request.kind,
        method=request.method,
        status=status,
        waiting_for=_waiting_for(request),
        rejection_reason=reason,
        rejection_detail=detail,
        requested_at=at if previous is None else previous.requested_at,
        since=previous.since if previous is not None and previous.status is status else at,
        updated_at=at,
    )
    return RequestView(request, shown)


def fold_family_view(events: Iterable[tuple[BindingEvent, datetime]]) -> list[FamilyMember]:
    """A holder's family view from their stream's events and when each was recorded."""
    views: dict[str, RequestView] = {}
    for event, at in events:
        views[event.request_id] = evolve_view(views.get(event.request_id), event, at)
    return sorted((v.shown for v in views.values()), key=lambda m: (m.requested_at, m.request_id))


_REQUEST = TypeAdapter(BindRequest)
_COLUMNS = tuple(FamilyMember.model_fields)


def _view_of(row: asyncpg.Record) -> RequestView:
    shown = FamilyMember.model_validate({c: row[c] for c in _COLUMNS})
    return RequestView(_REQUEST.validate_json(row["domain_state"]), shown)


def _row_of(view: RequestView) -> tuple[Any, ...]:
    return (*(getattr(view.shown, c) for c in _COLUMNS), _REQUEST.dump_json(view.request).decode())


class BindingViews:
    """The family view and member holders, fed from the binding service's log.

    A batch loads the rows of the requests it touches, folds its events into them in order,
    and writes them back: three or four statements whatever its size.
    """

    name = "binding_views"

    def __init__(self, schema: str) -> None:
        check_schema_name(schema)
        family, holders = f"{schema}.family_view", f"{schema}.member_holders"
        self.tables: Sequence[str] = (family, holders)
        self._load_sql = (
            f"SELECT {', '.join(_COLUMNS)}, domain_state::text AS domain_state"
            f" FROM {family} WHERE (holder, request_id) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[]))"
        )
        names = [*_COLUMNS, "domain_state"]
        values = [f"${i}" for i in range(1, len(names) + 1)]
        values[-1] += "::jsonb"
        self._save_sql = (
            f"INSERT INTO {family} ({', '.join(names)}) VALUES ({', '.join(values)})"
            " ON CONFLICT (holder, request_id) DO UPDATE SET "
            + ", ".join(f"{n} = excluded.{n}" for n in names[2:])
        )
        self._unbind_sql = (
            f"DELETE FROM {holders} WHERE (member, kind, holder) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))"
        )
        self._bind_sql = (
            f"INSERT INTO {holders} (member, kind, holder, request_id, since)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::timestamptz[])"
            " ON CONFLICT (member, kind, holder) DO UPDATE"
            " SET request_id = excluded.request_id, since = excluded.since"
        )

    async def apply(self, conn: asyncpg.Connection, event: EventRecord) -> None:
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: asyncpg.Connection, events: Sequence[EventRecord]) -> None:
        decoded = [
            (event.stream_id.removeprefix(_HOLDER_STREAM), *_decode(event))
            for event in events
            if event.stream_id.startswith(_HOLDER_STREAM)
        ]
        if not decoded:
            return
        keys = sorted({(holder, event.request_id) for holder, event, _ in decoded})
        rows = await conn.fetch(self._load_sql, [k[0] for k in keys], [k[1] for k in keys])
        views = {(r["holder"], r["request_id"]): _view_of(r) for r in rows}
        # What member_holders must hold for (member, kind, holder) once the batch is in: the
        # request now bound, or None once it left `bound`; a later event's answer wins.
        bound: dict[tuple[str, str, str], FamilyMember | None] = {}
        for holder, event, at in decoded:
            before = views.get((holder, event.request_id))
            after = evolve_view(before, event, at)
            views[(holder, event.request_id)] = after
            was = before is not None and before.shown.status is ViewStatus.BOUND
            now = after.shown.status is ViewStatus.BOUND
            if was != now:
                bound[(after.shown.member, after.shown.kind, holder)] = after.shown if now else None
        await conn.executemany(self._save_sql, [_row_of(views[k]) for k in keys])
        gone = [key for key, member in bound.items() if member is None]
        if gone:
            members, kinds, holders = ([key[i] for key in gone] for i in range(3))
            await conn.execute(self._unbind_sql, members, kinds, holders)
        added = [m for m in bound.values() if m is not None]
        if added:
            await conn.execute(
                self._bind_sql,
                [m.member for m in added],
                [m.kind for m in added],
                [m.holder for m in added],
                [m.request_id for m in added],
                [m.since for m in added],
            )


def _decode(event: EventRecord) -> tuple[BindingEvent, datetime]:
    """The family view shows when events were recorded, which only the own log knows."""
    if not isinstance(event, RecordedEvent):
        raise TypeError("binding views are fed from the binding service's own log")
    return binding_codec.decode(event), event.recorded_at


async def family_view(db: Executor, schema: str, holder: str) -> list[FamilyMember]:
    """The holder's bind requests, oldest first."""
    rows = await db.fetch(
        f"SELECT {', '.join(_COLUMNS)} FROM {check_schema_name(schema)}.family_view"
        " WHERE holder = $1 ORDER BY requested_at, request_id",
        holder,
    )
    return [FamilyMember.model_validate(dict(r)) for r in rows]


async def member_holders(db: Executor, schema: str, member: str) -> list[MemberHolder]:
    """Every holder that has the member bound now, by kind, longest bound first."""
    rows = await db.fetch(
        "SELECT member, kind, holder, request_id, since"
        f" FROM {check_schema_name(schema)}.member_holders"
        " WHERE member = $1 ORDER BY kind, since, holder",
        member,
    )
    return [MemberHolder.model_validate(dict(r)) for r in rows]


async def family_view_as_of(
    db: Executor, schema: str, holder: str, as_of: Position | datetime
) -> list[FamilyMember]:
    """The holder's family view as it stood at `as_of` (a position in the schema's log, or a
    recorded instant), folded from their stream (auditors)."""
    if isinstance(as_of, datetime) and as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")

    def standing(event: RecordedEvent) -> bool:
        if isinstance(as_of, Position):
            return event.position <= as_of
        return event.recorded_at <= as_of

    recorded = await PostgresEventStore(db, schema).read_stream(holder_stream(holder))
    # The stream as it stood: a prefix, so a request's events are never seen without the
    # earlier ones even if a writer's transaction started before the previous append ended.
    upto = takewhile(standing, recorded)
    return fold_family_view((binding_codec.decode(e), e.recorded_at) for e in upto)
