"""Identity use cases: load -> decide -> append on person and face check streams, with the key
vault and the service's own tables (ID number claims, password hashes, pending checks)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import date, datetime
from uuid import NAMESPACE_URL, uuid4, uuid5

from argon2 import PasswordHasher

from contracts.id_number import parse_id_number
from services.identity.domain import (
    ActivateVoucher,
    AddInsuredPlace,
    ErasePerson,
    OldPasswordChecked,
    Person,
    RecordPasswordAttempt,
    RegisterPerson,
    SetPaymentPassword,
    SwitchCurrentInsuredPlace,
    make_person_decider,
)
from services.identity.errors import (
    OldPasswordWrongError,
    PasswordLockedError,
    PaymentPasswordNotSetError,
    PersonalDataErasedError,
    PersonAlreadyRegisteredError,
    PersonNotRegisteredError,
)
from services.identity.face_check import (
    FACE_CHECK_EVENTS,
    ExpireFaceCheck,
    FaceCheck,
    FaceCheckNotRequestedError,
    FaceCheckRequested,
    FaceFailureReason,
    FacePurpose,
    RecordFaceVerificationFailed,
    RecordFaceVerified,
    RequestFaceCheck,
    face_check_decider,
)
from services.identity.face_provider import FaceProvider
from services.identity.password import DEFAULT_LOCKOUT, LockoutPolicy, check_payment_password
from services.identity.password_hashing import (
    KDF_SCHEME,
    hash_payment_password,
    verify_payment_password,
)
from services.identity.person_events import (
    PERSON_EVENTS,
    Channel,
    PaymentPasswordChanged,
    PaymentPasswordRejected,
    PaymentPasswordSet,
    PaymentPasswordVerified,
)
from services.identity.sealing import SealingEventStore
from services.identity.tables import IdentityTables
from services.runtime.codec import PydanticCodec
from services.runtime.decider import CommandContext, CommandHandler
from services.runtime.events import CommandReusedError, EventStore
from services.runtime.pii import KeyVault, lookup_hash, new_pseudonym

PERSON_CODEC = PydanticCodec(PERSON_EVENTS)
FACE_CHECK_CODEC = PydanticCodec(FACE_CHECK_EVENTS)
PROVIDER_ACTOR = "face-provider"
NEW_CREDENTIAL = (PaymentPasswordSet, PaymentPasswordChanged)  # the events that name a new hash


def person_stream(pseudonym: str) -> str:
    return f"person-{pseudonym}"


def face_stream(check_id: str) -> str:
    return f"face-{check_id}"


@dataclass(frozen=True)
class IdentityDeps:
    """Built once at start-up (bootstrap) and passed in; `store` is the raw log the relay reads."""

    store: EventStore
    vault: KeyVault
    tables: IdentityTables
    lookup_key: bytes
    hasher: PasswordHasher
    provider: FaceProvider
    policy: LockoutPolicy = DEFAULT_LOCKOUT
    expiry_batch: int = 100


class IdentityHandlers:
    def __init__(self, deps: IdentityDeps) -> None:
        self.deps = deps
        self.decider = make_person_decider(deps.policy)
        self.person_store = SealingEventStore(deps.store, deps.vault)
        self.persons = CommandHandler(self.person_store, self.decider, PERSON_CODEC)
        self.checks = CommandHandler(deps.store, face_check_decider, FACE_CHECK_CODEC)
        deps.provider.connect(self.provider_answered)

    # ---------------------------------------------------------------------------- reads

    async def person(self, pseudonym: str) -> Person | None:
        """The person as their stream says, `personal` None once erased."""
        recorded = await self.person_store.read_stream(person_stream(pseudonym))
        return self.decider.fold([PERSON_CODEC.decode(r) for r in recorded])

    async def face_check(self, check_id: str) -> FaceCheck | None:
        recorded = await self.deps.store.read_stream(face_stream(check_id))
        return face_check_decider.fold([FACE_CHECK_CODEC.decode(r) for r in recorded])

    async def _face_check(self, check_id: str) -> FaceCheck:
        """A check another command cites as evidence; the decider judges what it proves."""
        check = await self.face_check(check_id)
        if check is None:
            raise FaceCheckNotRequestedError
        return check

    async def _registered(self, pseudonym: str) -> Person:
        person = await self.person(pseudonym)
        if person is None:
            raise PersonNotRegisteredError
        return person

    # ---------------------------------------------------------------------------- persons

    async def register_person(
        self,
        name: str,
        id_number: str,
        insured_place: str,
        today: date,
        ctx: CommandContext,
        *,
        personal_account: bool = False,
    ) -> str:
        """The new person's pseudonym. One person per ID number: the claim of its lookup hash
        commits with the PersonRegistered event or not at all."""
        number = parse_id_number(id_number, today).value  # claims need the normalised form
        claim = lookup_hash(self.deps.lookup_key, number)
        owner = await self.deps.tables.claim_owner(claim)
        if owner is not None:  # fast path; the claim decides
            return await self._registration_of(owner, ctx)
        pseudonym = new_pseudonym()
        await self.deps.vault.create_key(pseudonym)
        store = SealingEventStore(self.deps.tables.claiming(claim, pseudonym), self.deps.vault)
        command = RegisterPerson(
            pseudonym,
            name,
            number,
            insured_place,
            today,
            id_lookup=claim,
            personal_account=personal_account,
        )
        try:
            await CommandHandler(store, self.decider, PERSON_CODEC).handle(
                person_stream(pseudonym), command, ctx
            )
        except PersonAlreadyRegisteredError:
            await self.deps.vault.erase(pseudonym)  # the loser's key guarded nothing stored
            return await self._registration_of(await self.deps.tables.claim_owner(claim), ctx)
        except CommandReusedError:
            await self.deps.vault.erase(pseudonym)  # nor did the key of a reused command id
            raise
        return pseudonym

    async def _registration_of(self, owner: str | None, ctx: CommandContext) -> str:
        """The person who holds the number, when `ctx`'s command registered them (a retry of
        that registration answers as it did: with them); refused for any other command."""
        if owner is None or await self.persons.first_outcome(person_stream(owner), ctx) is None:
            raise PersonAlreadyRegisteredError
        return owner

    async def add_insured_place(self, pseudonym: str, place: str, ctx: CommandContext) -> None:
        await self.persons.handle(person_stream(pseudonym), AddInsuredPlace(place), ctx)

    async def switch_insured_place(self, pseudonym: str, place: str, ctx: CommandContext) -> None:
        command = SwitchCurrentInsuredPlace(place)
        await self.persons.handle(person_stream(pseudonym), command, ctx)

    async def activate_voucher(
        self, pseudonym: str, channel: Channel, check_id: str, ctx: CommandContext
    ) -> None:
        command = ActivateVoucher(channel, await self._face_check(check_id), ctx.now)
        await self.persons.handle(person_stream(pseudonym), command, ctx)

    async def set_payment_password(
        self,
        pseudonym: str,
        password: str,
        channel: Channel,
        ctx: CommandContext,
        *,
        old_password: str | None = None,
        face_check_id: str | None = None,
    ) -> None:
        """The first password, or a new one proven by the old one or by a face check of the
        person (the decider says which suffices). The hash is kept under the command's id
        before the event names it; a wrong old password is recorded as an attempt, then refused.
        A retry answers as the command did, without comparing the old password again (it was
        the current one then, it is not now).
        """
        first = await self.persons.first_outcome(person_stream(pseudonym), ctx)
        if first is not None:
            if any(isinstance(e, PaymentPasswordRejected) for e in first.events):
                raise OldPasswordWrongError
            return
        person = await self._registered(pseudonym)
        if person.personal is None:
            raise PersonalDataErasedError
        personal = person.personal
        # The new password's rules first: a trivial one costs no attempt of the old one.
        check_payment_password(password, personal.birth_date, personal.id_number)
        proof: OldPasswordChecked | FaceCheck | None = None
        if face_check_id is not None:
            proof = await self._face_check(face_check_id)
        elif old_password is not None:
            proof = await self._compare(person, old_password, ctx.now)
        credential_id = str(ctx.command_id)
        command = SetPaymentPassword(credential_id, KDF_SCHEME, channel, proof, ctx.now)
        # Decided first on what was read, so that a refusal costs no KDF run and leaves no hash
        # behind; the append decides again on the stream as it is then.
        if any(isinstance(e, NEW_CREDENTIAL) for e in self.decider.decide(command, person)):
            password_hash = await asyncio.to_thread(
                hash_payment_password,
                self.deps.hasher,
                password,
                personal.birth_date,
                personal.id_number,
            )
            await self.deps.tables.save_credential(pseudonym, credential_id, password_hash)
        await self.persons.handle(person_stream(pseudonym), command, ctx)
        if isinstance(proof, OldPasswordChecked) and not proof.matched:
            raise OldPasswordWrongError  # recorded as a failed attempt all the same

    async def verify_payment_password(
        self, pseudonym: str, password: str, ctx: CommandContext
    ) -> bool:
        """Whether the password matches; every attempt is recorded, the 5th wrong one locks.
        A retry answers as the attempt did, even if that attempt locked the password."""
        first = await self.persons.first_outcome(person_stream(pseudonym), ctx)
        if first is not None:
            return any(isinstance(e, PaymentPasswordVerified) for e in first.events)
        checked = await self._compare(await self._registered(pseudonym), password, ctx.now)
        command = RecordPasswordAttempt(checked.matched, ctx.now)
        await self.persons.handle(person_stream(pseudonym), command, ctx)
        return checked.matched

    async def _compare(self, person: Person, password: str, at: datetime) -> OldPasswordChecked:
        """`password` against the person's current hash; refused, before any KDF run, when no
        password is set or its use is locked."""
        if person.credential_id is None:
            raise PaymentPasswordNotSetError
        if person.locked_until is not None and person.password_locked(at):
            raise PasswordLockedError(person.locked_until)
        stored = await self.deps.tables.credential(person.pseudonym, person.credential_id)
        matched = stored is not None and await asyncio.to_thread(
            verify_payment_password, self.deps.hasher, stored, password
        )
        return OldPasswordChecked(person.credential_id, matched)

    async def erase_person(self, pseudonym: str, ctx: CommandContext) -> None:
        """Crypto-shred: delete the data key first, then record PersonErased (both repeatable)."""
        await self._registered(pseudonym)
        await self.deps.vault.erase(pseudonym)
        await self.persons.handle(person_stream(pseudonym), ErasePerson(), ctx)

    # ---------------------------------------------------------------------------- face checks

    async def request_face_check(
        self,
        purpose: FacePurpose,
        subject: str,
        on_behalf_of: str | None,
        deadline: datetime,
        ctx: CommandContext,
    ) -> str:
        """The check id (derived from the command id, so a retry asks for the same check)."""
        await self._registered(subject)
        check_id = str(uuid5(ctx.command_id, "face-check"))
        await self.deps.tables.add_pending_check(check_id, deadline)
        command = RequestFaceCheck(
            check_id, purpose, subject, on_behalf_of, ctx.correlation_id, deadline, ctx.now
        )
        result = await self.checks.handle(face_stream(check_id), command, ctx)
        for event in result.events:
            if isinstance(event, FaceCheckRequested) and not result.duplicate:
                await self.deps.provider.start_check(event)
        return check_id

    async def record_face_outcome(
        self, check_id: str, failure: FaceFailureReason | None, ctx: CommandContext
    ) -> None:
        """The provider's answer: verified (`failure` None) or failed; late answers expire."""
        command: RecordFaceVerified | RecordFaceVerificationFailed = (
            RecordFaceVerified(ctx.now)
            if failure is None
            else RecordFaceVerificationFailed(failure, ctx.now)
        )
        await self.checks.handle(face_stream(check_id), command, ctx)
        await self.deps.tables.drop_pending_check(check_id)

    async def provider_answered(
        self, check_id: str, failure: FaceFailureReason | None, at: datetime
    ) -> None:
        """A provider's answer as a command of its own, under the check's correlation id."""
        check = await self.face_check(check_id)
        correlation = check.correlation_id if check is not None else face_stream(check_id)
        ctx = CommandContext(uuid4(), at, correlation, PROVIDER_ACTOR)
        await self.record_face_outcome(check_id, failure, ctx)

    async def expire_overdue_checks(self, ctx: CommandContext) -> int:
        """Record FaceCheckExpired for checks past their deadline at `ctx.now`; how many."""
        expired = 0
        for check_id in await self.deps.tables.overdue_checks(ctx.now, self.deps.expiry_batch):
            one = replace(ctx, command_id=uuid5(NAMESPACE_URL, f"{ctx.command_id}/{check_id}"))
            try:
                result = await self.checks.handle(
                    face_stream(check_id), ExpireFaceCheck(ctx.now), one
                )
                expired += bool(result.events) and not result.duplicate
            except FaceCheckNotRequestedError:
                pass  # the request never reached the log: nothing to expire
            await self.deps.tables.drop_pending_check(check_id)
        return expired
