"""Review use cases on the in-memory adapters: the policy in force opens the case, decisions
by the covering reviewer, materials served only for the case's own hashes, withdrawal and
escalation, and binding's events through the consumer (redeliveries have one effect)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from services.review.commands import NewCase
from services.review.consumers import binding_consumer
from services.review.domain import CaseStatus, case_stream
from services.review.errors import CaseDecidedError, CaseNotFoundError, MaterialNotFoundError
from services.review.events import CaseType, ReviewMode, WithdrawalCause
from services.review.handlers import ReviewDeps, ReviewHandlers
from services.runtime.blobs import InMemoryBlobStore
from services.runtime.consumer import IncomingMessage, InMemoryDeadLetters, InMemoryInbox, Outcome
from services.runtime.decider import CommandContext
from services.runtime.kafka_codec import to_record
from services.runtime.memory import InMemoryEventStore
from tests.builders import recorded_event
from tests.unit.review.builders import BEIJING, MATERIALS, NANCHANG, NOW, REGION, material

PDF = b"%PDF-1.4 letter"


class Overdue:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def overdue(self, opened_before: datetime, limit: int) -> list[str]:
        return self.ids[:limit]


class World:
    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.blobs = InMemoryBlobStore()
        self.overdue = Overdue()
        deps = ReviewDeps(self.store, self.blobs, self.overdue, timedelta(hours=48))
        self.handlers = ReviewHandlers(deps)


def ctx(at: datetime = NOW, actor: str = "test") -> CommandContext:
    return CommandContext(uuid4(), at, "corr-1", actor)


def new_case(**over: Any) -> NewCase:
    fields: dict[str, Any] = {
        "case_type": CaseType.MEMBER_BINDING,
        "request_id": "req-1",
        "region": REGION,
        "holder": "p_holder",
        "member": "p_member",
        "kind": None,
        "relation": None,
        "materials": MATERIALS,
    } | over
    return NewCase(**fields)


@pytest.fixture
def world() -> World:
    return World()


async def test_a_case_opens_under_the_policy_in_force_and_a_change_leaves_it_alone(
    world: World,
) -> None:
    manual = await world.handlers.open_case(new_case(), ctx())
    policy = await world.handlers.change_policy(
        "360100", CaseType.MEMBER_BINDING, ReviewMode.AUTO_APPROVE, ctx(actor="ops-1")
    )
    assert (policy.version, policy.changed_by) == (1, "ops-1")
    auto = await world.handlers.open_case(new_case(request_id="req-2"), ctx())
    assert (manual.status, manual.opened.policy_version) == (CaseStatus.OPEN, 0)
    assert (auto.status, auto.closed_by) == (CaseStatus.APPROVED, "policy:3601/member_binding/v1")
    assert (await world.handlers.case(manual.case_id)) == manual


async def test_the_detail_shows_the_history_with_who_did_what(world: World) -> None:
    case = await world.handlers.open_case(new_case(), ctx(actor="binding"))
    await world.handlers.claim(case.case_id, NANCHANG, ctx(actor=NANCHANG.subject))
    await world.handlers.approve(case.case_id, NANCHANG, ctx(actor=NANCHANG.subject))
    detail = await world.handlers.case_detail(case.case_id, NANCHANG)
    assert [(h.event, h.actor) for h in detail.history] == [
        ("ReviewCaseOpened", "binding"),
        ("ReviewCaseClaimed", "rev-nc"),
        ("MaterialsApproved", "rev-nc"),
    ]
    with pytest.raises(CaseNotFoundError):
        await world.handlers.case_detail(case.case_id, BEIJING)
    with pytest.raises(CaseDecidedError):
        await world.handlers.approve(case.case_id, NANCHANG, ctx())


async def test_a_material_is_served_for_the_cases_own_hash_to_a_covering_reviewer_only(
    world: World,
) -> None:
    stored = await world.blobs.put(PDF)
    letter = material(MATERIALS[0].role, "application/pdf").model_copy(
        update={"sha256": stored.sha256}
    )
    case = await world.handlers.open_case(new_case(materials=(letter, *MATERIALS[1:])), ctx())
    blob = await world.handlers.material(case.case_id, stored.sha256, NANCHANG)
    assert (blob.data, blob.content_type) == (PDF, "application/pdf")
    other = await world.blobs.put(PDF + b" of someone else")
    for sha256 in (other.sha256, MATERIALS[1].sha256):  # not the case's; the case's but absent
        with pytest.raises(MaterialNotFoundError):
            await world.handlers.material(case.case_id, sha256, NANCHANG)
    with pytest.raises(CaseNotFoundError):
        await world.handlers.material(case.case_id, stored.sha256, BEIJING)
    assert hashlib.sha256(PDF).hexdigest() == stored.sha256


async def test_withdrawal_closes_an_open_case_once_and_skips_unknown_requests(
    world: World,
) -> None:
    case = await world.handlers.open_case(new_case(), ctx())
    cause = WithdrawalCause.REQUEST_EXPIRED
    assert await world.handlers.withdraw(CaseType.MEMBER_BINDING, "req-1", cause, ctx())
    assert not await world.handlers.withdraw(CaseType.MEMBER_BINDING, "req-1", cause, ctx())
    assert not await world.handlers.withdraw(CaseType.MEMBER_BINDING, "req-9", cause, ctx())
    state = await world.handlers.case(case.case_id)
    assert state is not None
    assert state.status is CaseStatus.WITHDRAWN
    assert await world.store.read_stream(case_stream("unknown")) == []


async def test_escalation_records_overdue_cases_once(world: World) -> None:
    first = await world.handlers.open_case(new_case(), ctx())
    young = await world.handlers.open_case(
        new_case(request_id="req-2"), ctx(NOW + timedelta(days=2))
    )
    world.overdue.ids = [first.case_id, young.case_id]  # the table may lag: the stream decides
    later = ctx(NOW + timedelta(hours=48))
    assert await world.handlers.escalate_overdue(later) == 1
    assert await world.handlers.escalate_overdue(ctx(NOW + timedelta(hours=49))) == 0


def submitted(request_id: str = "req-1", **over: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "holder": "p_holder",
        "member": "p_member",
        "kind": "family_account",
        "relation": "parent",
        "region": REGION,
        "materials": [m.model_dump(mode="json") for m in MATERIALS],
    } | over


def message(type_: str, data: dict[str, Any]) -> IncomingMessage:
    event = recorded_event("holder-p_holder", type_, data, at=NOW, metadata={"actor": "p_holder"})
    record = to_record(event, "binding")
    return IncomingMessage("qinqing.binding.v1", 0, 0, record.key, record.value, record.headers)


async def test_bindings_submission_opens_one_case_and_its_rejection_withdraws_it(
    world: World,
) -> None:
    dead = InMemoryDeadLetters()
    consumer = binding_consumer(world.handlers, InMemoryInbox(), dead, lambda: NOW)
    first = message("BindingMaterialsSubmitted", submitted())
    assert await consumer.process(first) is Outcome.APPLIED
    assert await consumer.process(first) is Outcome.DUPLICATE
    again = message("BindingMaterialsSubmitted", submitted())  # same request, new event id
    assert await consumer.process(again) is Outcome.APPLIED
    other = message("MemberBound", {"request_id": "req-1", "member": "p_member", "kind": "proxy"})
    assert await consumer.process(other) is Outcome.SKIPPED  # binding's own business
    rejected = {
        "request_id": "req-1",
        "member": "p_member",
        "kind": "family_account",
        "reason": "face_failed",
        "detail": "no_match",
    }
    assert await consumer.process(message("BindingRejected", rejected)) is Outcome.APPLIED
    (case_events,) = [
        [r.type for r in await world.store.read_stream(s)] for s in await _streams(world)
    ]
    assert case_events == ["ReviewCaseOpened", "ReviewCaseWithdrawn"]
    assert dead.published == []


async def test_a_submission_from_a_region_that_is_not_a_code_is_dead_lettered(
    world: World,
) -> None:
    dead = InMemoryDeadLetters()
    consumer = binding_consumer(world.handlers, InMemoryInbox(), dead, lambda: NOW)
    consumer.retry_delay_s = 0.0
    bad = message("BindingMaterialsSubmitted", submitted(region="36"))
    assert await consumer.process(bad) is Outcome.DEAD_LETTERED
    assert await _streams(world) == []


async def _streams(world: World) -> list[str]:
    return sorted({r.stream_id async for r in world.store.read_all()})
