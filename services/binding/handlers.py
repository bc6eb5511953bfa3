"""Binding use cases: resolve who is meant, then load -> decide -> append on the holder's stream."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import assert_never
from uuid import NAMESPACE_URL, uuid5
from zoneinfo import ZoneInfo

from contracts.id_number import IdNumberError, mask_id_number, parse_id_number
from contracts.names import mask_name
from contracts.vocabulary import BindingKind, MaterialRef, MaterialRole
from services.binding.commands import (
    BindingCommand,
    ExpireBindRequest,
    RecordFaceOutcome,
    RecordMaterialsApproved,
    RecordMaterialsRejected,
    RequestMemberBinding,
    RevokeBinding,
    SignCommitmentLetter,
    SubmitMaterials,
)
from services.binding.domain import BindRequest, Holder, Status, binding_decider, holder_stream
from services.binding.errors import (
    BirthDateInFutureError,
    HolderUnknownError,
    MaterialNotUploadedError,
    MaterialsNotNeededError,
    MaterialTypeError,
    PersonNotFoundError,
    RequestNotFoundError,
    RevocationNotConfirmedError,
)
from services.binding.events import BindingEvent, Confirmation, binding_codec
from services.binding.forms import BindingForm, check_required
from services.binding.letter import CommitmentLetter, commitment_letter_pdf
from services.binding.rules import Method
from services.binding.tables import BindingTables, KnownPerson, RequestRow
from services.runtime.auth import TokenError, decode_confirmation
from services.runtime.blobs import BlobStore
from services.runtime.decider import CommandContext, CommandHandler, CommandResult
from services.runtime.events import EventStore
from services.runtime.pii import lookup_hash

CHINA = ZoneInfo("Asia/Shanghai")
DEFAULT_REQUEST_TTL = timedelta(days=7)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
PAGE_TYPES = IMAGE_TYPES | {"application/pdf"}


def china_today(now: datetime) -> date:
    return now.astimezone(CHINA).date()


@dataclass(frozen=True)
class BindingDeps:
    """Built once at start-up and passed in; `store` is the raw log the relay reads."""

    store: EventStore
    tables: BindingTables
    blobs: BlobStore
    lookup_key: bytes
    token_secret: str  # checks identity's step-up confirmations for unbinding
    request_ttl: timedelta = DEFAULT_REQUEST_TTL
    expiry_batch: int = 100


@dataclass(frozen=True)
class Accepted:
    request_id: str
    request: BindRequest


@dataclass(frozen=True)
class _Member:
    pseudonym: str
    birth_date: date
    insured_place: str
    id_masked: str
    mother: str | None = None


class BindingHandlers:
    def __init__(self, deps: BindingDeps) -> None:
        self.deps = deps
        self.holders = CommandHandler(deps.store, binding_decider, binding_codec)

    async def holder(self, holder: str) -> Holder:
        recorded = await self.deps.store.read_stream(holder_stream(holder))
        return binding_decider.fold([binding_codec.decode(r) for r in recorded])

    async def _handle(
        self, holder: str, command: BindingCommand, ctx: CommandContext, request_id: str
    ) -> CommandResult[Holder, BindingEvent]:
        result = await self.holders.handle(holder_stream(holder), command, ctx)
        held = result.state.requests.get(request_id)
        if held is not None and held.status is not Status.PENDING:
            await self.deps.tables.settle(request_id)
        return result

    # ---------------------------------------------------------------------------- requests

    async def request_binding(
        self, holder: str, form: BindingForm, ctx: CommandContext
    ) -> Accepted:
        """Resolve the member (and mother), record the request; the id derives from the
        command id, so a retried request answers with the first one's id."""
        check_required(form)
        known = await self._known(holder)
        today = china_today(ctx.now)
        if form.member_birth_date is not None and form.member_birth_date > today:
            raise BirthDateInFutureError
        member = await self._member(holder, form, today)
        request_id = str(uuid5(ctx.command_id, "bind-request"))
        deadline = ctx.now + self.deps.request_ttl
        command = RequestMemberBinding(
            request_id=request_id,
            holder=holder,
            member=member.pseudonym,
            member_birth_date=member.birth_date,
            member_insured_place=member.insured_place,
            relation=form.relation,
            kind=form.kind,
            method=form.method,
            today=today,
            at=ctx.now,
            deadline=deadline,
            mother=member.mother,
            commitment_accepted=form.commitment_accepted,
            holder_has_personal_account=known.personal_account,
        )
        row = RequestRow(
            request_id, holder, mask_name(form.member_name), member.id_masked, today, deadline
        )
        await self.deps.tables.add_request(row)
        try:
            result = await self._handle(holder, command, ctx, request_id)
        except Exception:
            # Nothing half-written is left, but a row whose request reached the log (a retry
            # failing after the first attempt appended) stays: outcomes are routed by it.
            if request_id not in (await self.holder(holder)).requests:
                await self.deps.tables.drop_request(request_id)
            raise
        return Accepted(request_id, result.state.requests[request_id])

    async def _member(self, holder: str, form: BindingForm, today: date) -> _Member:
        """Who the form names: a registered person found by the keyed hash of their ID number,
        or, without one, a pseudonym derived from what identifies them (same input, same
        member, so a repeated binding is recognised)."""
        key = self.deps.lookup_key
        match form.method:
            case Method.ID_NUMBER | Method.PROXY_WITH_ID:
                person, number = await self._registered(
                    form.member_id_number, "member_id_number", today
                )
                birth = parse_id_number(number, today).birth_date
                return _Member(
                    person.pseudonym, birth, person.insured_place, mask_id_number(number)
                )
            case Method.BIRTH_CERTIFICATE:
                mother, _ = await self._registered(form.mother_id_number, "mother_id_number", today)
                certificate = lookup_hash(key, f"birth-certificate:{form.birth_certificate_number}")
                assert form.member_birth_date is not None  # check_required
                return _Member(
                    f"bc-{certificate[:32]}",
                    form.member_birth_date,
                    mother.insured_place,
                    "—",
                    mother=mother.pseudonym,
                )
            case Method.PROXY_WITHOUT_ID:
                born, place = form.member_birth_date, form.member_insured_place
                assert born is not None  # check_required
                assert place is not None
                who = lookup_hash(key, f"no-id:{holder}:{form.member_name}:{born}")
                return _Member(f"nid-{who[:32]}", born, place, "—")
            case _:
                assert_never(form.method)

    async def _known(self, holder: str) -> KnownPerson:
        """The holder as the directory knows them (their registration may still be on its way)."""
        known = await self.deps.tables.person(holder)
        if known is None:
            raise HolderUnknownError
        return known

    async def _registered(
        self, raw: str | None, field: str, today: date
    ) -> tuple[KnownPerson, str]:
        try:
            number = parse_id_number(raw or "", today).value
        except IdNumberError as exc:
            exc.input_field = field  # the form's field, not identity's `id_number`
            raise
        person = await self.deps.tables.person_by_lookup(lookup_hash(self.deps.lookup_key, number))
        if person is None:
            raise PersonNotFoundError(field)
        return person, number

    async def request_status(self, holder: str, request_id: str) -> BindRequest:
        """The holder's own request; another holder's reads as unknown."""
        request = (await self.holder(holder)).requests.get(request_id)
        if request is None:
            raise RequestNotFoundError
        return request

    # ---------------------------------------------------------------------------- materials

    async def _own_row(self, holder: str, request_id: str) -> RequestRow:
        row = await self.deps.tables.request(request_id)
        if row is None or row.holder != holder:
            raise RequestNotFoundError
        return row

    async def commitment_letter(self, holder: str, request_id: str) -> bytes:
        """The letter to sign, the same bytes at every download (its hash is recorded)."""
        row = await self._own_row(holder, request_id)
        request = await self.request_status(holder, request_id)
        if not request.needs_review or request.relation is None:
            raise MaterialsNotNeededError
        letter = CommitmentLetter(
            request_id=request_id,
            member_name_masked=row.member_name_masked,
            member_id_masked=row.member_id_masked,
            relation=request.relation,
            kind=request.kind,
            issued_on=row.requested_on,
        )
        return commitment_letter_pdf(letter)

    async def sign_commitment_letter(
        self, holder: str, request_id: str, signature_sha256: str, ctx: CommandContext
    ) -> BindRequest:
        letter = await self.commitment_letter(holder, request_id)
        stored = await self.deps.blobs.put(letter, "application/pdf")
        letter_ref = MaterialRef(
            role=MaterialRole.COMMITMENT_LETTER,
            sha256=stored.sha256,
            content_type="application/pdf",
        )
        signature = await self._material(MaterialRole.SIGNATURE, signature_sha256, "signature")
        command = SignCommitmentLetter(request_id, letter_ref, signature, ctx.now)
        result = await self._handle(holder, command, ctx, request_id)
        return result.state.requests[request_id]

    async def submit_materials(
        self,
        holder: str,
        request_id: str,
        holder_page: str,
        member_page: str,
        ctx: CommandContext,
    ) -> BindRequest:
        await self._own_row(holder, request_id)
        known = await self._known(holder)
        command = SubmitMaterials(
            request_id,
            await self._material(MaterialRole.HOLDER_HOUSEHOLD, holder_page, "holder_household"),
            await self._material(MaterialRole.MEMBER_HOUSEHOLD, member_page, "member_household"),
            known.insured_place,
            ctx.now,
        )
        result = await self._handle(holder, command, ctx, request_id)
        return result.state.requests[request_id]

    async def _material(self, role: MaterialRole, sha256: str, field: str) -> MaterialRef:
        blob = await self.deps.blobs.get(sha256)
        if blob is None:
            raise MaterialNotUploadedError(field)
        allowed = IMAGE_TYPES if role is MaterialRole.SIGNATURE else PAGE_TYPES
        if blob.content_type not in allowed:
            raise MaterialTypeError(field)
        return MaterialRef(role=role, sha256=blob.sha256, content_type=blob.content_type)

    # ---------------------------------------------------------------------------- outcomes

    async def record_review(
        self, request_id: str, approved: bool, reason: str, ctx: CommandContext
    ) -> bool:
        """A reviewer's decision; False when no request of ours has this id (recorded by the
        consumer's inbox and otherwise ignored)."""
        command: BindingCommand = (
            RecordMaterialsApproved(request_id, ctx.now)
            if approved
            else RecordMaterialsRejected(request_id, reason, ctx.now)
        )
        return await self._outcome(request_id, command, ctx)

    async def record_face_outcome(
        self, request_id: str, verified: bool, reason: str, ctx: CommandContext
    ) -> bool:
        command = RecordFaceOutcome(request_id, verified, ctx.now, reason)
        return await self._outcome(request_id, command, ctx)

    async def _outcome(self, request_id: str, command: BindingCommand, ctx: CommandContext) -> bool:
        row = await self.deps.tables.request(request_id)
        if row is None:
            return False
        await self._handle(row.holder, command, ctx, request_id)
        return True

    async def expire_overdue(self, ctx: CommandContext) -> int:
        """Record BindRequestExpired for pending requests past their deadline; how many."""
        expired = 0
        for request_id, holder in await self.deps.tables.overdue(ctx.now, self.deps.expiry_batch):
            one = replace(ctx, command_id=uuid5(NAMESPACE_URL, f"{ctx.command_id}/{request_id}"))
            result = await self._handle(
                holder, ExpireBindRequest(request_id, ctx.now), one, request_id
            )
            expired += bool(result.events) and not result.duplicate
            await self.deps.tables.settle(request_id)  # unknown to the log, or finished
        return expired

    # ---------------------------------------------------------------------------- revocation

    async def revoke(
        self, holder: str, member: str, kind: BindingKind, confirmation: str, ctx: CommandContext
    ) -> BindRequest:
        """Unbind, confirmed by identity's proof that the holder re-entered the payment
        password or passed an unbinding face check minutes ago. A proof serves one unbinding
        (repeating that same unbinding with it is a retry, and answers the same)."""
        try:
            proof = decode_confirmation(confirmation, secret=self.deps.token_secret, now=ctx.now)
        except TokenError as exc:
            raise RevocationNotConfirmedError(field="confirmation") from exc
        if proof.subject != holder:
            raise RevocationNotConfirmedError(field="confirmation")
        tables = self.deps.tables
        if not await tables.use_confirmation(proof.token_id, holder, member, kind.value):
            raise RevocationNotConfirmedError(field="confirmation")  # spent on another
        command = RevokeBinding(member, kind, Confirmation(proof.method.value))
        try:
            result = await self.holders.handle(holder_stream(holder), command, ctx)
        except Exception:
            await tables.release_confirmation(proof.token_id)
            raise
        # The latest: a member bound again after an unbinding has an older revoked request.
        revoked = next(
            r
            for r in reversed(list(result.state.requests.values()))
            if r.member == member and r.kind is kind and r.status is Status.REVOKED
        )
        await self.deps.tables.settle(revoked.request_id)
        return revoked
