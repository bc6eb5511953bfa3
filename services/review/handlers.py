"""Review use cases: load -> decide -> append on case streams and the policy stream, and the
reads a reviewer's console needs (a case with its history, a material's bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol
from uuid import NAMESPACE_URL, uuid5

from contracts.vocabulary import MaterialRef
from services.review.commands import (
    ApproveCase,
    ClaimCase,
    EscalateCase,
    NewCase,
    OpenCase,
    RejectCase,
    WithdrawCase,
)
from services.review.domain import Case, case_decider, case_id_for, case_stream, visible
from services.review.errors import CaseNotFoundError, MaterialNotFoundError
from services.review.events import (
    CASE_CODEC,
    POLICY_CODEC,
    CaseType,
    Check,
    OnFailure,
    RejectionReason,
    ReviewMode,
    WithdrawalCause,
)
from services.review.policy import ChangePolicy, Policy, PolicyBook, policy_decider, region_prefix
from services.runtime.blobs import Blob, BlobStore
from services.runtime.decider import CommandContext, CommandHandler
from services.runtime.events import EventStore
from services.runtime.principal import Principal

POLICY_STREAM = "review-policies"


class OverdueCases(Protocol):
    async def overdue(self, opened_before: datetime, limit: int) -> list[str]: ...


@dataclass(frozen=True)
class ReviewDeps:
    """Built once at start-up (bootstrap) and passed in; `store` is the log the relay reads."""

    store: EventStore
    materials: BlobStore
    overdue: OverdueCases
    escalate_after: timedelta = timedelta(hours=48)
    escalation_batch: int = 100


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    event: str  # the event's type, e.g. ReviewCaseClaimed
    at: datetime
    actor: str | None


@dataclass(frozen=True)
class CaseDetail:
    case: Case
    history: Sequence[HistoryEntry]

    @property
    def materials(self) -> tuple[MaterialRef, ...]:
        return self.case.opened.materials


class ReviewHandlers:
    def __init__(self, deps: ReviewDeps) -> None:
        self.deps = deps
        self.cases = CommandHandler(deps.store, case_decider, CASE_CODEC)
        self.policies = CommandHandler(deps.store, policy_decider, POLICY_CODEC)

    # ---------------------------------------------------------------------------- reads

    async def policy_book(self) -> PolicyBook:
        recorded = await self.deps.store.read_stream(POLICY_STREAM)
        return policy_decider.fold([POLICY_CODEC.decode(r) for r in recorded])

    async def case(self, case_id: str) -> Case | None:
        """The case as its stream says, for any caller: check `visible` before showing it."""
        recorded = await self.deps.store.read_stream(case_stream(case_id))
        return case_decider.fold([CASE_CODEC.decode(r) for r in recorded])

    async def case_detail(self, case_id: str, reviewer: Principal) -> CaseDetail:
        """The case and its history; CaseNotFoundError outside the reviewer's regions."""
        recorded = await self.deps.store.read_stream(case_stream(case_id))
        case = visible(case_decider.fold([CASE_CODEC.decode(r) for r in recorded]), reviewer)
        history = [
            HistoryEntry(r.stream_version, r.type, r.occurred_at, r.metadata.get("actor"))
            for r in recorded
        ]
        return CaseDetail(case, history)

    async def material(self, case_id: str, sha256: str, reviewer: Principal) -> Blob:
        """A material of a case the reviewer covers; only hashes the case names are served."""
        case = visible(await self.case(case_id), reviewer)
        if sha256 not in {m.sha256 for m in case.opened.materials}:
            raise MaterialNotFoundError
        blob = await self.deps.materials.get(sha256)
        if blob is None:
            raise MaterialNotFoundError
        return blob

    # ---------------------------------------------------------------------------- cases

    async def open_case(self, new: NewCase, ctx: CommandContext) -> Case:
        """Open the case under the policy in force now; a repeat opens nothing new."""
        policy = (await self.policy_book()).applying_to(new.region, new.case_type)
        command = OpenCase(new, policy, ctx.now)
        case_id = case_id_for(new.case_type, new.request_id)
        return _known((await self.cases.handle(case_stream(case_id), command, ctx)).state)

    async def claim(self, case_id: str, reviewer: Principal, ctx: CommandContext) -> Case:
        return await self._decide(case_id, ClaimCase(reviewer, ctx.now), ctx)

    async def approve(self, case_id: str, reviewer: Principal, ctx: CommandContext) -> Case:
        return await self._decide(case_id, ApproveCase(reviewer, ctx.now), ctx)

    async def reject(
        self,
        case_id: str,
        reviewer: Principal,
        reason: RejectionReason,
        note: str,
        ctx: CommandContext,
    ) -> Case:
        return await self._decide(case_id, RejectCase(reviewer, reason, note, ctx.now), ctx)

    async def _decide(
        self, case_id: str, command: ClaimCase | ApproveCase | RejectCase, ctx: CommandContext
    ) -> Case:
        return _known((await self.cases.handle(case_stream(case_id), command, ctx)).state)

    async def withdraw(
        self, case_type: CaseType, request_id: str, cause: WithdrawalCause, ctx: CommandContext
    ) -> bool:
        """Withdraw the request's open case; False when there is none (never opened, decided)."""
        stream = case_stream(case_id_for(case_type, request_id))
        result = await self.cases.handle(stream, WithdrawCase(cause, ctx.now), ctx)
        return bool(result.events) and not result.duplicate

    async def escalate_overdue(self, ctx: CommandContext) -> int:
        """Record ReviewCaseEscalated for cases open longer than the limit at `ctx.now`."""
        after = self.deps.escalate_after
        cutoff = ctx.now - after
        escalated = 0
        for case_id in await self.deps.overdue.overdue(cutoff, self.deps.escalation_batch):
            one = replace(ctx, command_id=uuid5(NAMESPACE_URL, f"{ctx.command_id}/{case_id}"))
            command = EscalateCase(after, ctx.now)
            result = await self.cases.handle(case_stream(case_id), command, one)
            escalated += bool(result.events) and not result.duplicate
        return escalated

    # ---------------------------------------------------------------------------- policies

    async def change_policy(
        self,
        region: str,
        case_type: CaseType,
        mode: ReviewMode,
        ctx: CommandContext,
        *,
        checks: tuple[Check, ...] = (),
        on_failure: OnFailure = OnFailure.MANUAL,
    ) -> Policy:
        """Set the policy of a region prefix and case type; it applies to cases opened later."""
        command = ChangePolicy(region, case_type, mode, checks, on_failure, ctx.actor, ctx.now)
        result = await self.policies.handle(POLICY_STREAM, command, ctx)
        return result.state.policies[(region_prefix(region), case_type)]


def _known(case: Case | None) -> Case:
    if case is None:
        raise CaseNotFoundError
    return case
