"""The binding HTTP API: routes that turn requests into handler calls, and the error answers."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, FastAPI, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from contracts.errors import DomainError
from contracts.vocabulary import BindingKind
from services.binding.domain import BindRequest, Step
from services.binding.errors import (
    AlreadyBoundError,
    CommitmentNotSignedError,
    FamilyFullError,
    HolderUnknownError,
    MaterialsAlreadySubmittedError,
    MaterialsNotNeededError,
    NotBoundError,
    RequestConflictError,
    RequestNotFoundError,
    RequestNotPendingError,
    RevocationNotConfirmedError,
)
from services.binding.forms import BindingForm
from services.binding.handlers import BindingHandlers
from services.binding.projections import (
    FamilyMember,
    MemberHolder,
    family_view,
    family_view_as_of,
    member_holders,
)
from services.runtime.auth import require
from services.runtime.blobs import MAX_MATERIAL_BYTES
from services.runtime.events import Position
from services.runtime.http import Command, service_app
from services.runtime.openapi import refusals
from services.runtime.params import PathId, as_of
from services.runtime.principal import Principal, Role

_END_OF_TIME = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class BindingApi:
    """What the routes need, built once by the app's lifespan (services.binding.app)."""

    handlers: BindingHandlers
    pool: asyncpg.Pool
    schema: str
    clock: Callable[[], datetime]
    ready: Callable[[], Awaitable[bool]]

    async def current(
        self, holder: str, as_of: Position | datetime | None = None
    ) -> list[FamilyMember]:
        """The holder's requests folded from their stream: fresh (the projection may lag a
        moment behind), or as they stood at `as_of`."""
        return await family_view_as_of(self.pool, self.schema, holder, as_of or _END_OF_TIME)


# async: FastAPI would run a plain `def` dependency in a worker thread on every request
async def _api(request: Request) -> BindingApi:
    api: BindingApi = request.app.state.binding
    return api


Api = Annotated[BindingApi, Depends(_api)]
Insured = Annotated[Principal, Depends(require(Role.INSURED))]
Staff = Annotated[Principal, Depends(require(Role.AUDITOR, Role.OPERATOR))]
Anyone = Annotated[Principal, Depends(require(Role.INSURED, Role.AUDITOR, Role.OPERATOR))]
AsOf = Annotated[Position | datetime | None, Depends(as_of)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RequestState(_Body):
    request_id: str
    member: str
    kind: BindingKind
    status: str
    waiting_for: list[str] = Field(description=f"Of {', '.join(Step)}; empty once finished.")


class StoredMaterial(_Body):
    sha256: str
    content_type: str
    size: int


class SignatureBody(_Body):
    signature_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class MaterialsBody(_Body):
    holder_household: str = Field(pattern=r"^[0-9a-f]{64}$")
    member_household: str = Field(pattern=r"^[0-9a-f]{64}$")


class RevokeBody(_Body):
    kind: BindingKind
    confirmation: str = Field(
        max_length=2048,
        repr=False,
        description="Identity's proof: from POST /persons/me/payment-password/verification,"
        " or GET /face-checks/{id} of a verified unbinding check.",
    )


def _state(request_id: str, request: BindRequest) -> RequestState:
    return RequestState(
        request_id=request_id,
        member=request.member,
        kind=request.kind,
        status=request.status.value,
        waiting_for=list(Step.in_flow_order(request.waiting_for)),
    )


def _routes(app: FastAPI) -> None:
    @app.post(
        "/bindings",
        status_code=202,
        tags=["bindings"],
        responses=refusals(400, 401, 403, 409, 413, 422, 503),
    )
    async def request_binding(
        form: BindingForm,
        api: Api,
        caller: Insured,
        ctx: Command,
    ) -> RequestState:
        """Start binding a member; the answer says what the request now waits for."""
        accepted = await api.handlers.request_binding(caller.subject, form, ctx)
        return _state(accepted.request_id, accepted.request)

    @app.get(
        "/bindings/{request_id}",
        tags=["bindings"],
        responses=refusals(401, 403, 404, 422, 503),
    )
    async def binding_status(request_id: PathId, api: Api, caller: Insured) -> FamilyMember:
        found = [m for m in await api.current(caller.subject) if m.request_id == request_id]
        if not found:
            raise RequestNotFoundError  # another holder's request reads as unknown
        return found[0]

    @app.post(
        "/materials",
        status_code=201,
        tags=["materials"],
        responses=refusals(400, 401, 403, 413, 422, 503),
    )
    async def upload_material(file: UploadFile, api: Api, caller: Insured) -> StoredMaterial:
        """JPEG, PNG or PDF up to 10 MiB; stored once, addressed by its SHA-256."""
        data = await file.read(MAX_MATERIAL_BYTES + 1)
        stored = await api.handlers.deps.blobs.put(data, file.content_type)
        return StoredMaterial(
            sha256=stored.sha256, content_type=stored.content_type, size=stored.size
        )

    @app.get(
        "/bindings/{request_id}/commitment-letter",
        tags=["materials"],
        responses=refusals(401, 403, 404, 409, 422, 503),
    )
    async def commitment_letter(request_id: PathId, api: Api, caller: Insured) -> Response:
        pdf = await api.handlers.commitment_letter(caller.subject, request_id)
        disposition = f'inline; filename="commitment-letter-{request_id}.pdf"'
        return Response(
            pdf, media_type="application/pdf", headers={"Content-Disposition": disposition}
        )

    @app.post(
        "/bindings/{request_id}/commitment-letter/signature",
        tags=["materials"],
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def sign_letter(
        request_id: PathId, body: SignatureBody, api: Api, caller: Insured, ctx: Command
    ) -> RequestState:
        """Sign the letter as downloaded, with a signature image uploaded to /materials."""
        request = await api.handlers.sign_commitment_letter(
            caller.subject, request_id, body.signature_sha256, ctx
        )
        return _state(request_id, request)

    @app.post(
        "/bindings/{request_id}/materials",
        tags=["materials"],
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def submit_materials(
        request_id: PathId, body: MaterialsBody, api: Api, caller: Insured, ctx: Command
    ) -> RequestState:
        """Attach both household register pages: the request goes to a reviewer."""
        request = await api.handlers.submit_materials(
            caller.subject, request_id, body.holder_household, body.member_household, ctx
        )
        return _state(request_id, request)

    @app.get(
        "/family",
        tags=["family"],
        responses=refusals(401, 403, 422, 503),
    )
    async def my_family(
        api: Api,
        caller: Insured,
        as_of: AsOf,
    ) -> list[FamilyMember]:
        """My members and requests, from the projection, or as they stood at `as_of`."""
        if as_of is not None:
            return await api.current(caller.subject, as_of)
        return await family_view(api.pool, api.schema, caller.subject)

    @app.get(
        "/holders/{holder}/family",
        tags=["family"],
        responses=refusals(401, 403, 422, 503),
    )
    async def holders_family(
        holder: PathId,
        api: Api,
        caller: Staff,
        as_of: AsOf,
    ) -> list[FamilyMember]:
        """For auditors and operators: any holder's family view, optionally as of an instant."""
        if as_of is not None:
            return await api.current(holder, as_of)
        return await family_view(api.pool, api.schema, holder)

    @app.get(
        "/members/{member}/holders",
        tags=["family"],
        responses=refusals(401, 403, 422, 503),
    )
    async def holders_of_member(member: PathId, api: Api, caller: Anyone) -> list[MemberHolder]:
        """Who has the member bound: the member themself, auditors and operators."""
        if caller.role is Role.INSURED and caller.subject != member:
            return []
        return await member_holders(api.pool, api.schema, member)

    @app.post(
        "/family/members/{member}/revocation",
        tags=["family"],
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def revoke(
        member: PathId, body: RevokeBody, api: Api, caller: Insured, ctx: Command
    ) -> RequestState:
        """Unbind, confirmed by identity's proof of the payment password or a face check."""
        request = await api.handlers.revoke(
            caller.subject, member, body.kind, body.confirmation, ctx
        )
        return _state(request.request_id, request)


_STATUS: dict[type[DomainError], int] = {
    RequestNotFoundError: 404,
    NotBoundError: 404,
    RevocationNotConfirmedError: 403,
    HolderUnknownError: 409,
    AlreadyBoundError: 409,
    FamilyFullError: 409,
    RequestConflictError: 409,
    RequestNotPendingError: 409,
    MaterialsAlreadySubmittedError: 409,
    MaterialsNotNeededError: 409,
    CommitmentNotSignedError: 409,
}


def create_app(
    jwt_secret: str, open_api: Callable[[], AbstractAsyncContextManager[BindingApi]]
) -> FastAPI:
    """The app; `open_api` builds the dependencies when it starts and closes them at the end."""

    # A 10 MiB material plus its multipart framing.
    app = service_app(
        "binding", jwt_secret, open_api, _STATUS, max_body_bytes=MAX_MATERIAL_BYTES + 64 * 1024
    )
    _routes(app)
    return app
