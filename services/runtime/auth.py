"""Bearer tokens (PyJWT, HS256) and the FastAPI dependency every service's API checks them with.

Who a token names is `services.runtime.principal`, kept apart so that a domain can know its
caller without reaching PyJWT or FastAPI.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies' annotations at run
# time, and those inside `require` name its local functions.
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from uuid import uuid4

import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.runtime.errors import error_body
from services.runtime.pii import warn_if_dev_default
from services.runtime.principal import REGION_SCOPED, Principal, Role
from services.runtime.settings import Settings

ISSUER = AUDIENCE = "qinqing"
_ALGORITHM = "HS256"
_LEEWAY = timedelta(seconds=10)  # clock skew between the services
_MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash


class TokenError(Exception):
    """Base of the token errors; `code` is what an API answers with."""

    code = "auth.invalid_token"


class InvalidTokenError(TokenError):
    """Malformed, wrongly signed, for another issuer or audience, or with unknown claims."""


class ExpiredTokenError(TokenError):
    """The token was valid once; its `exp` has passed."""

    code = "auth.expired_token"


def jwt_secret(settings: Settings) -> str:
    """The signing key (`QINQING_JWT_SECRET`), checked for length."""
    warn_if_dev_default(settings, "jwt_secret")
    secret = settings.jwt_secret.get_secret_value()
    if len(secret.encode()) < _MIN_SECRET_BYTES:
        raise ValueError(f"QINQING_JWT_SECRET must be at least {_MIN_SECRET_BYTES} bytes")
    return secret


def issue_token(
    principal: Principal, ttl: timedelta, *, secret: str, now: datetime | None = None
) -> str:
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal.subject,
        "role": principal.role.value,
        "iat": issued,
        "exp": issued + ttl,
    }
    if principal.regions:
        claims["regions"] = list(principal.regions)
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def decode_token(token: str, *, secret: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],  # pinned: the token's own `alg` header is not trusted
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=_LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise ExpiredTokenError("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(f"the token is not valid: {exc}") from exc
    regions = claims.get("regions", [])
    if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
        raise InvalidTokenError("the token's regions claim is not a list of codes")
    try:
        return Principal(claims["sub"], Role(str(claims.get("role"))), tuple(regions))
    except ValueError as exc:
        raise InvalidTokenError(f"the token's claims are not a valid principal: {exc}") from exc


# Step-up confirmations: identity signs one when the caller re-proved who they are (payment
# password matched, or an unbinding face check verified); another service accepts it for a
# sensitive act within minutes, without calling identity. Its own audience keeps it from ever
# passing for an access token, and an access token from passing for it.
CONFIRMATION_AUDIENCE = "qinqing-confirmation"
CONFIRMATION_TTL = timedelta(minutes=5)


class ConfirmationMethod(StrEnum):
    PAYMENT_PASSWORD = "payment_password"  # noqa: S105 (a method's name, not a secret)
    FACE = "face"


@dataclass(frozen=True)
class ConfirmationProof:
    subject: str
    method: ConfirmationMethod
    # The proof's own id (`jti`): a service that accepts it records it, so it serves once.
    token_id: str = field(default="", compare=False)


def issue_confirmation(
    subject: str,
    method: ConfirmationMethod,
    *,
    secret: str,
    now: datetime,
    ttl: timedelta = CONFIRMATION_TTL,
) -> str:
    claims = {
        "iss": ISSUER,
        "aud": CONFIRMATION_AUDIENCE,
        "sub": subject,
        "method": method.value,
        "jti": uuid4().hex,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def decode_confirmation(token: str, *, secret: str, now: datetime) -> ConfirmationProof:
    """The confirmation if signed by us and unexpired at `now` (the service's clock)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            audience=CONFIRMATION_AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"], "verify_exp": False},
        )
        method = ConfirmationMethod(str(claims.get("method")))
        confirmation = ConfirmationProof(claims["sub"], method, str(claims["jti"]))
    except (jwt.PyJWTError, ValueError) as exc:
        raise InvalidTokenError(f"the confirmation is not valid: {exc}") from exc
    if datetime.fromtimestamp(int(claims["exp"]), UTC) + _LEEWAY <= now:
        raise ExpiredTokenError("the confirmation has expired")
    return confirmation


class AccessDeniedError(Exception):
    """Answered as 401 (who are you?) or 403 (not you), with a bilingual JSON body."""

    def __init__(self, status: int, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.status, self.code, self.zh, self.en = status, code, zh, en


_MISSING = AccessDeniedError(
    401, "auth.missing_token", "需要登录凭证", "A bearer token is required"
)
_UNAUTHENTICATED = {
    "auth.invalid_token": ("登录凭证无效", "The bearer token is not valid"),
    "auth.expired_token": ("登录凭证已过期，请重新登录", "The bearer token has expired"),
}


async def _access_denied(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccessDeniedError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    body = error_body(exc.code, (exc.zh, exc.en))
    return JSONResponse(body, status_code=exc.status, headers=headers)


def configure_auth(app: FastAPI, secret: str) -> None:
    """Let `require` check tokens signed with `secret` on this app, and answer its refusals."""
    app.state.token_secret = secret
    app.add_exception_handler(AccessDeniedError, _access_denied)


_bearer = HTTPBearer(auto_error=False)


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller's principal, whatever the role; 401 without a valid token."""
    secret = getattr(request.app.state, "token_secret", None)
    if secret is None:
        raise RuntimeError("configure_auth(app, secret) was not called where the app is built")
    if credentials is None:
        raise _MISSING
    try:
        return decode_token(credentials.credentials, secret=secret)
    except TokenError as exc:
        zh, en = _UNAUTHENTICATED[exc.code]
        raise AccessDeniedError(401, exc.code, zh, en) from exc


async def _no_region() -> None:  # async: a `def` dependency costs a worker thread per call
    return None


RegionOf = Callable[..., str | None] | Callable[..., Awaitable[str | None]]


def require(*roles: Role | str, region_of: RegionOf | None = None) -> Callable[..., Any]:
    """A dependency admitting only `roles`; 401 without a valid token, 403 otherwise.

    `region_of` is itself a FastAPI dependency (it may take path parameters or a connection)
    giving the region the request touches; region-scoped roles must cover it. It runs only
    once the caller is authenticated and holds one of the roles.
    """
    allowed = frozenset(Role(r) for r in roles)
    if not allowed:
        raise ValueError("require() needs at least one role")

    async def with_role(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if principal.role not in allowed:
            raise AccessDeniedError(
                403,
                "auth.forbidden_role",
                "当前身份无权进行此操作",
                f"The {principal.role} role may not do this",
            )
        return principal

    async def with_region(
        principal: Annotated[Principal, Depends(with_role)],
        region: Annotated[str | None, Depends(region_of or _no_region)],
    ) -> Principal:
        scoped = region_of is not None and principal.role in REGION_SCOPED
        if scoped and (region is None or not principal.covers(region)):
            raise AccessDeniedError(
                403,
                "auth.region_not_covered",
                "该地区不在您的管辖范围内",
                "This region is not among yours",
            )
        return principal

    return with_region
