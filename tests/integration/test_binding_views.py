"""Binding read models on the real PostgreSQL: live rows, rebuild == live, as-of, member holders."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import uuid4

import asyncpg
import pytest

from contracts.vocabulary import BindingKind, Relation
from services.binding.commands import (
    BindingCommand,
    ExpireBindRequest,
    RecordFaceOutcome,
    RecordMaterialsApproved,
    RecordMaterialsRejected,
    RevokeBinding,
    SignCommitmentLetter,
    SubmitMaterials,
)
from services.binding.domain import binding_decider, holder_stream
from services.binding.events import BindingRejectionReason, Confirmation, binding_codec
from services.binding.projections import (
    BindingViews,
    FamilyMember,
    ViewStatus,
    family_view,
    family_view_as_of,
    member_holders,
)
from services.binding.rules import Method
from services.runtime.decider import CommandContext, CommandHandler
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pgstore import Executor, PostgresEventStore
from services.runtime.projection import ProjectionRunner
from tests.unit.binding.builders import (
    CHILD,
    DEADLINE,
    HOLDER_PAGE,
    JIANGXI,
    LETTER,
    MEMBER_PAGE,
    NOW,
    SIGNATURE,
    request,
)

pytestmark = pytest.mark.integration

ANNA, BO = "p-anna", "p-bo"  # two holders
FATHER, SON, MOTHER, BABY = "p-father", "p-son", "p-mother", "p-baby"
FAMILY = BindingKind.FAMILY_ACCOUNT


def minute(n: int) -> datetime:
    return NOW + timedelta(minutes=n)


class Desk:
    """Runs commands on holders' streams through the command handler, as the API will."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.handler = CommandHandler(store, binding_decider, binding_codec)

    async def do(self, holder: str, command: BindingCommand, at: datetime) -> None:
        ctx = CommandContext(uuid4(), at, correlation_id=f"c-{uuid4().hex[:8]}", actor=holder)
        await self.handler.handle(holder_stream(holder), command, ctx)

    async def ask(self, holder: str, member: str, request_id: str, **changes: Any) -> None:
        command = request(member, request_id, holder=holder, **changes)
        await self.do(holder, command, command.at)

    async def submit(self, holder: str, request_id: str, at: int) -> None:
        signed = SignCommitmentLetter(request_id, LETTER, SIGNATURE, minute(at))
        await self.do(holder, signed, minute(at))
        pages = SubmitMaterials(request_id, HOLDER_PAGE, MEMBER_PAGE, JIANGXI, minute(at + 1))
        await self.do(holder, pages, minute(at + 1))

    async def approve(self, holder: str, request_id: str, at: int) -> None:
        await self.do(holder, RecordMaterialsApproved(request_id, minute(at)), minute(at))

    async def face_ok(self, holder: str, request_id: str, at: int) -> None:
        await self.do(holder, RecordFaceOutcome(request_id, True, minute(at)), minute(at))

    async def revoke(self, holder: str, member: str, at: int) -> None:
        revoke = RevokeBinding(member, FAMILY, Confirmation.PAYMENT_PASSWORD)
        await self.do(holder, revoke, minute(at))


async def history(desk: Desk) -> None:
    """Two holders' streams with every status: bound both ways, rejected and asked again,
    expired, by birth certificate, revoked, and one member bound by both holders."""
    await desk.ask(ANNA, FATHER, "r-anna-father")
    await desk.submit(ANNA, "r-anna-father", 5)
    await desk.approve(ANNA, "r-anna-father", 20)  # review first, then the face
    await desk.face_ok(ANNA, "r-anna-father", 30)
    await desk.ask(ANNA, SON, "r-anna-son", member_birth_date=CHILD, relation=Relation.CHILD)
    await desk.submit(ANNA, "r-anna-son", 40)
    rejected = RecordMaterialsRejected("r-anna-son", "户口本照片不清晰", minute(50))
    await desk.do(ANNA, rejected, minute(50))
    await desk.ask(ANNA, SON, "r-anna-son-2", member_birth_date=CHILD, relation=Relation.CHILD)
    await desk.ask(ANNA, MOTHER, "r-anna-mother")
    expire = ExpireBindRequest("r-anna-mother", DEADLINE + timedelta(minutes=1))
    await desk.do(ANNA, expire, DEADLINE + timedelta(minutes=1))
    await desk.ask(BO, FATHER, "r-bo-father")
    await desk.submit(BO, "r-bo-father", 60)
    await desk.face_ok(BO, "r-bo-father", 70)  # the face first, then the review
    await desk.approve(BO, "r-bo-father", 80)
    newborn: dict[str, Any] = {
        "member_birth_date": CHILD,
        "relation": Relation.CHILD,
        "method": Method.BIRTH_CERTIFICATE,
        "mother": "p-bo-wife",
    }
    await desk.ask(BO, BABY, "r-bo-baby", **newborn)
    await desk.face_ok(BO, "r-bo-baby", 90)
    await desk.revoke(BO, BABY, 100)


@pytest.fixture
async def store(db_pool: asyncpg.Pool, pg_schema: str) -> PostgresEventStore:
    async with db_pool.acquire() as proxy:
        await migrate(cast(asyncpg.Connection, proxy), pg_schema, service_migrations("binding"))
    return PostgresEventStore(db_pool, pg_schema)


def runner_for(store: PostgresEventStore, **kw: Any) -> ProjectionRunner:
    return ProjectionRunner(
        cast(asyncpg.Pool, store.pool), store.schema, BindingViews(store.schema), **kw
    )


async def caught_up(runner: ProjectionRunner) -> None:
    async with asyncio.timeout(60):  # a guard against hanging, not a measure of speed
        await runner.catch_up()


async def all_rows(store: PostgresEventStore) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    schema = store.schema
    family = await store.pool.fetch(f"SELECT * FROM {schema}.family_view ORDER BY 1, 2")
    holders = await store.pool.fetch(f"SELECT * FROM {schema}.member_holders ORDER BY 1, 2, 3")
    return family, holders


async def bind_request_status(
    db: Executor, schema: str, holder: str, request_id: str
) -> FamilyMember | None:
    """The request as its holder sees it; None if unknown or another holder's."""
    rows = await family_view(db, schema, holder)
    return next((m for m in rows if m.request_id == request_id), None)


async def test_the_live_view_shows_each_request_as_the_app_does(
    store: PostgresEventStore,
) -> None:
    await history(Desk(store))
    await caught_up(runner_for(store))
    anna = {m.request_id: m for m in await family_view(store.pool, store.schema, ANNA)}
    assert list(anna) == ["r-anna-father", "r-anna-son", "r-anna-son-2", "r-anna-mother"]
    assert {rid: m.status for rid, m in anna.items()} == {
        "r-anna-father": ViewStatus.BOUND,
        "r-anna-son": ViewStatus.REJECTED,
        "r-anna-son-2": ViewStatus.AWAITING_MATERIALS,
        "r-anna-mother": ViewStatus.EXPIRED,
    }
    son = anna["r-anna-son"]
    assert (son.rejection_reason, son.rejection_detail) == (
        BindingRejectionReason.MATERIALS_REJECTED,
        "户口本照片不清晰",
    )
    assert anna["r-anna-son-2"].waiting_for == ("commitment_letter", "materials", "review")
    assert anna["r-anna-mother"].waiting_for == ()
    assert anna["r-anna-father"].relation is Relation.PARENT
    bo = {m.request_id: m.status for m in await family_view(store.pool, store.schema, BO)}
    assert bo == {"r-bo-father": ViewStatus.BOUND, "r-bo-baby": ViewStatus.REVOKED}


async def test_a_request_status_is_found_only_by_its_own_holder(
    store: PostgresEventStore,
) -> None:
    await history(Desk(store))
    await caught_up(runner_for(store))
    async with cast(asyncpg.Pool, store.pool).acquire() as conn:
        mine = await bind_request_status(conn, store.schema, BO, "r-bo-baby")
        assert mine is not None
        assert (mine.status, mine.member, mine.method) == (
            ViewStatus.REVOKED,
            BABY,
            Method.BIRTH_CERTIFICATE,
        )
        assert await bind_request_status(conn, store.schema, ANNA, "r-bo-baby") is None
        assert await bind_request_status(conn, store.schema, BO, "r-unknown") is None


async def test_a_rebuild_from_the_log_equals_the_live_view(store: PostgresEventStore) -> None:
    await history(Desk(store))
    # Small batches end inside appends, which the rebuild's one batch never does.
    live = runner_for(store, batch_size=3)
    await caught_up(live)
    before = await all_rows(store)
    assert len(before[0]) == 6
    assert await live.rebuild() > 0
    assert await all_rows(store) == before


async def test_as_of_an_instant_between_two_events_gives_the_earlier_state(
    store: PostgresEventStore,
) -> None:
    desk, runner = Desk(store), runner_for(store)
    await desk.ask(ANNA, FATHER, "r-anna-father")
    await desk.submit(ANNA, "r-anna-father", 5)
    await desk.approve(ANNA, "r-anna-father", 20)
    await caught_up(runner)
    earlier = await family_view(store.pool, store.schema, ANNA)
    cut = await store.pool.fetchval("SELECT clock_timestamp()")
    await desk.face_ok(ANNA, "r-anna-father", 30)
    await desk.ask(ANNA, SON, "r-anna-son", member_birth_date=CHILD, relation=Relation.CHILD)
    await caught_up(runner)
    now = await family_view(store.pool, store.schema, ANNA)

    at_cut = await family_view_as_of(store.pool, store.schema, ANNA, cut)
    assert at_cut == earlier
    assert [(m.status, m.waiting_for) for m in at_cut] == [(ViewStatus.PENDING_FACE, ("face",))]
    latest = await store.pool.fetchval("SELECT clock_timestamp()")
    assert await family_view_as_of(store.pool, store.schema, ANNA, latest) == now
    assert [m.status for m in now] == [ViewStatus.BOUND, ViewStatus.AWAITING_MATERIALS]
    before_anything = (await store.read_stream(holder_stream(ANNA)))[0].recorded_at
    earliest = before_anything - timedelta(microseconds=1)
    assert await family_view_as_of(store.pool, store.schema, ANNA, earliest) == []

    # A rebuild as of the same instant agrees with the as-of fold.
    await runner.rebuild(as_of=cut)
    assert await family_view(store.pool, store.schema, ANNA) == earlier


async def test_as_of_a_position_gives_the_state_a_rebuild_to_that_position_shows(
    store: PostgresEventStore,
) -> None:
    desk, runner = Desk(store), runner_for(store)
    await desk.ask(ANNA, FATHER, "r-anna-father")
    await desk.submit(ANNA, "r-anna-father", 5)
    cut = (await store.read_stream(holder_stream(ANNA)))[-1].position
    await desk.approve(ANNA, "r-anna-father", 20)
    await desk.face_ok(ANNA, "r-anna-father", 30)
    await caught_up(runner)
    assert [m.status for m in await family_view(store.pool, store.schema, ANNA)] == [
        ViewStatus.BOUND
    ]

    at_cut = await family_view_as_of(store.pool, store.schema, ANNA, cut)
    assert [m.status for m in at_cut] == [ViewStatus.PENDING_REVIEW_AND_FACE]
    await runner.rebuild(as_of=cut)
    assert await family_view(store.pool, store.schema, ANNA) == at_cut


async def test_member_holders_follow_binding_and_revocation(store: PostgresEventStore) -> None:
    desk, runner = Desk(store), runner_for(store)
    await desk.ask(ANNA, FATHER, "r-anna-father")
    await desk.submit(ANNA, "r-anna-father", 5)
    assert await member_holders(store.pool, store.schema, FATHER) == []  # pending only
    await desk.approve(ANNA, "r-anna-father", 20)
    await desk.face_ok(ANNA, "r-anna-father", 30)
    await caught_up(runner)
    (anna,) = await member_holders(store.pool, store.schema, FATHER)
    assert (anna.holder, anna.kind, anna.request_id) == (ANNA, FAMILY, "r-anna-father")
    bound = await bind_request_status(store.pool, store.schema, ANNA, "r-anna-father")
    assert bound is not None
    assert anna.since == bound.since

    await desk.ask(BO, FATHER, "r-bo-father")
    await desk.submit(BO, "r-bo-father", 60)
    await desk.approve(BO, "r-bo-father", 70)
    await desk.face_ok(BO, "r-bo-father", 80)
    await caught_up(runner)
    both = await member_holders(store.pool, store.schema, FATHER)
    assert [h.holder for h in both] == [ANNA, BO]

    await desk.revoke(ANNA, FATHER, 90)
    await caught_up(runner)
    assert [h.holder for h in await member_holders(store.pool, store.schema, FATHER)] == [BO]
    await desk.revoke(BO, FATHER, 95)
    await caught_up(runner)
    assert await member_holders(store.pool, store.schema, FATHER) == []


async def test_binding_again_after_a_revocation_lists_the_holder_again(
    store: PostgresEventStore,
) -> None:
    """Revoked and bound again within one batch: the later binding stays."""
    desk = Desk(store)
    proxy: dict[str, Any] = {"kind": BindingKind.PROXY, "method": Method.PROXY_WITHOUT_ID}
    proxy |= {"member_birth_date": CHILD, "commitment_accepted": True}
    await desk.ask(ANNA, SON, "r-1", **proxy)  # bound at once: no review, no face
    revoke = RevokeBinding(SON, BindingKind.PROXY, Confirmation.FACE)
    await desk.do(ANNA, revoke, minute(10))
    await desk.ask(ANNA, SON, "r-2", **proxy, at=minute(20))
    await caught_up(runner_for(store))
    (holder,) = await member_holders(store.pool, store.schema, SON)
    assert (holder.holder, holder.kind, holder.request_id) == (ANNA, BindingKind.PROXY, "r-2")
    rows = await family_view(store.pool, store.schema, ANNA)
    assert [(m.request_id, m.status) for m in rows] == [
        ("r-1", ViewStatus.REVOKED),
        ("r-2", ViewStatus.BOUND),
    ]
