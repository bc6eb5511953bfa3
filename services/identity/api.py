"""The identity HTTP API: routes that turn requests into handler calls, and the error answers."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.
# Chinese messages use full-width punctuation, as Chinese text should.

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Header, Request

from contracts.errors import DomainError
from services.identity.errors import (
    CallbackSignatureError,
    FaceCheckProofError,
    FaceCheckUsedError,
    OldPasswordRequiredError,
    OldPasswordWrongError,
    PasswordChangedMeanwhileError,
    PasswordLockedError,
    PersonAlreadyRegisteredError,
    PersonNotRegisteredError,
)
from services.identity.face_check import (
    MAX_WAIT,
    FaceCheckConflictError,
    FaceCheckNotRequestedError,
    FaceFailureReason,
    FacePurpose,
)
from services.identity.face_provider import verify_callback
from services.identity.handlers import IdentityHandlers
from services.identity.schemas import (
    ActivateBody,
    CallbackOutcome,
    FaceCheckBody,
    FaceCheckView,
    InsuredPlaceBody,
    PasswordVerified,
    Profile,
    ProviderCallback,
    Registered,
    RegisterPersonBody,
    SetPasswordBody,
    VerifyPasswordBody,
    profile_of,
    view_of,
)
from services.runtime.auth import ConfirmationMethod, issue_confirmation, require
from services.runtime.http import Command, service_app
from services.runtime.openapi import refusals
from services.runtime.params import PathId
from services.runtime.principal import Principal, Role

CHINA = ZoneInfo("Asia/Shanghai")  # ID numbers' birth dates and ages count in China's days
SIGNATURE_HEADER = "X-Signature"


@dataclass(frozen=True)
class IdentityApi:
    """What the routes need, built once by the app's lifespan (services.identity.app)."""

    handlers: IdentityHandlers
    clock: Callable[[], datetime]
    callback_secret: bytes
    ready: Callable[[], Awaitable[bool]]

    def today(self) -> date:
        return self.clock().astimezone(CHINA).date()


# ---------------------------------------------------------------------------- dependencies


# async: FastAPI would run a plain `def` dependency in a worker thread on every request
async def _api(request: Request) -> IdentityApi:
    api: IdentityApi = request.app.state.identity
    return api


Api = Annotated[IdentityApi, Depends(_api)]
Insured = Annotated[Principal, Depends(require(Role.INSURED))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
InsuredOrOperator = Annotated[Principal, Depends(require(Role.INSURED, Role.OPERATOR))]


async def _signed_by_provider(
    request: Request,
    api: Api,
    signature: Annotated[str, Header(alias=SIGNATURE_HEADER, max_length=128)] = "",
) -> None:
    """The provider's signature over the body as sent (a re-serialised body would not match).
    A dependency runs before the body's fields are checked, so an unsigned caller learns
    nothing about them; only a body that is not JSON at all is refused before."""
    if not verify_callback(api.callback_secret, await request.body(), signature):
        raise CallbackSignatureError


def _confirmation(
    request: Request, caller: Principal, method: ConfirmationMethod, now: datetime
) -> str:
    """A step-up proof signed with the app's token key (see services.runtime.auth)."""
    secret: str = request.app.state.token_secret
    return issue_confirmation(caller.subject, method, secret=secret, now=now)


# ---------------------------------------------------------------------------- routes


def _routes(app: FastAPI) -> None:
    @app.post(
        "/persons",
        status_code=201,
        tags=["persons"],
        responses=refusals(400, 401, 403, 409, 413, 422, 503),
    )
    async def register_person(
        body: RegisterPersonBody, api: Api, caller: Operator, ctx: Command
    ) -> Registered:
        pseudonym = await api.handlers.register_person(
            body.name,
            body.id_number,
            body.insured_place,
            api.today(),
            ctx,
            personal_account=body.personal_account,
        )
        return Registered(pseudonym=pseudonym)

    @app.get("/persons/me", tags=["persons"], responses=refusals(401, 403, 404, 503))
    async def my_profile(api: Api, caller: Insured) -> Profile:
        return await person_profile(caller.subject, api, caller)

    @app.get("/persons/{pseudonym}", tags=["persons"], responses=refusals(401, 403, 404, 422, 503))
    async def person_profile(pseudonym: PathId, api: Api, caller: InsuredOrOperator) -> Profile:
        person = await api.handlers.person(pseudonym)
        # Someone else's pseudonym reads as unknown, so a person's existence does not leak.
        if person is None or (caller.role is Role.INSURED and pseudonym != caller.subject):
            raise PersonNotRegisteredError
        return profile_of(person)

    @app.post(
        "/persons/me/insured-places",
        status_code=204,
        tags=["persons"],
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def add_insured_place(
        body: InsuredPlaceBody, api: Api, caller: Insured, ctx: Command
    ) -> None:
        await api.handlers.add_insured_place(caller.subject, body.insured_place, ctx)

    @app.put(
        "/persons/me/current-insured-place",
        status_code=204,
        tags=["persons"],
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def switch_insured_place(
        body: InsuredPlaceBody, api: Api, caller: Insured, ctx: Command
    ) -> None:
        await api.handlers.switch_insured_place(caller.subject, body.insured_place, ctx)

    @app.post(
        "/persons/me/voucher-activations",
        status_code=204,
        tags=["persons"],
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def activate_voucher(body: ActivateBody, api: Api, caller: Insured, ctx: Command) -> None:
        await api.handlers.activate_voucher(caller.subject, body.channel, body.face_check_id, ctx)

    @app.put(
        "/persons/me/payment-password",
        status_code=204,
        tags=["payment password"],
        description="Set the first payment password with the access token alone; change a set"
        " one with `old_password`, or reset it with `face_check_id` (a fresh verified"
        " `password_reset` check of the person's own, which also lifts a lock).",
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 423, 503),
    )
    async def set_payment_password(
        body: SetPasswordBody, api: Api, caller: Insured, ctx: Command
    ) -> None:
        await api.handlers.set_payment_password(
            caller.subject,
            body.password,
            body.channel,
            ctx,
            old_password=body.old_password,
            face_check_id=body.face_check_id,
        )

    @app.post(
        "/persons/me/payment-password/verification",
        tags=["payment password"],
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 423, 503),
    )
    async def verify_payment_password(
        request: Request,
        body: VerifyPasswordBody,
        api: Api,
        caller: Insured,
        ctx: Command,
    ) -> PasswordVerified:
        matched = await api.handlers.verify_payment_password(caller.subject, body.password, ctx)
        if not matched:
            return PasswordVerified(matched=False)
        proof = _confirmation(request, caller, ConfirmationMethod.PAYMENT_PASSWORD, ctx.now)
        return PasswordVerified(matched=True, confirmation=proof)


def _face_routes(app: FastAPI) -> None:
    @app.post(
        "/face-checks",
        status_code=202,
        tags=["face checks"],
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def request_face_check(
        request: Request,
        body: FaceCheckBody,
        api: Api,
        caller: Insured,
        ctx: Command,
    ) -> FaceCheckView:
        purpose = FacePurpose(body.purpose.value)
        deadline = ctx.now + MAX_WAIT[purpose]
        check_id = await api.handlers.request_face_check(
            purpose, caller.subject, None, deadline, ctx
        )
        return await face_check_status(request, check_id, api, caller)

    @app.get(
        "/face-checks/{check_id}",
        tags=["face checks"],
        responses=refusals(401, 403, 404, 422, 503),
    )
    async def face_check_status(
        request: Request, check_id: PathId, api: Api, caller: Insured
    ) -> FaceCheckView:
        check = await api.handlers.face_check(check_id)
        if check is None or caller.subject not in (check.subject, check.on_behalf_of):
            raise FaceCheckNotRequestedError  # another person's check reads as unknown
        view = view_of(check)
        if check.verified and check.purpose is FacePurpose.UNBINDING:
            proof = _confirmation(request, caller, ConfirmationMethod.FACE, api.clock())
            view = view.model_copy(update={"confirmation": proof})
        return view

    @app.post(
        "/face-provider/callback",
        status_code=204,
        tags=["face checks"],
        dependencies=[Depends(_signed_by_provider)],
        responses=refusals(400, 401, 404, 409, 413, 422, 503),
        description=f"Signed by the provider: `{SIGNATURE_HEADER}` is the hex HMAC-SHA256 of"
        " the raw body. No bearer token.",
    )
    async def provider_callback(callback: ProviderCallback, api: Api) -> None:
        failure = None
        if callback.outcome is CallbackOutcome.FAILED:
            failure = callback.reason or FaceFailureReason.PROVIDER_ERROR
        await api.handlers.provider_answered(callback.check_id, failure, api.clock())


# ---------------------------------------------------------------------------- error answers

# Statuses other than 422 for the domain's refusals; someone else's data reads as not found.
_STATUS: dict[type[DomainError], int] = {
    PersonNotRegisteredError: 404,
    FaceCheckNotRequestedError: 404,
    CallbackSignatureError: 401,
    PersonAlreadyRegisteredError: 409,
    FaceCheckConflictError: 409,
    PasswordChangedMeanwhileError: 409,
    FaceCheckUsedError: 409,  # before its base: a used check is a conflict, not a lack of proof
    FaceCheckProofError: 403,
    OldPasswordRequiredError: 403,
    OldPasswordWrongError: 403,
    PasswordLockedError: 423,
}


def create_app(
    jwt_secret: str, open_api: Callable[[], AbstractAsyncContextManager[IdentityApi]]
) -> FastAPI:
    """The app; `open_api` builds the dependencies when it starts and closes them at the end."""

    app = service_app("identity", jwt_secret, open_api, _STATUS)
    _routes(app)
    _face_routes(app)
    return app
