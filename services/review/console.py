"""The reviewer console: server-rendered pages under /console (sign in with a reviewer token,
the queue, a case with its materials, approve or reject) on the same handlers as the API; how
it answers (templates, error pages, CSRF tokens) is in `console_pages`."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.

import secrets
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import uuid4

from fastapi import Cookie, Depends, FastAPI, Form, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRouter
from fastapi.staticfiles import StaticFiles

from contracts.id_number import mask_id_number, normalise
from services.review.console_pages import (
    PREFIX,
    ConsoleRoute,
    SignInError,
    check_csrf,
    csrf_token,
    render_page,
    token_secret,
)
from services.review.events import NOTE_MAX, CaseType, RejectionReason
from services.review.queries import MAX_PAGE
from services.review.schemas import case_view, queue_view
from services.runtime.auth import TokenError, decode_token
from services.runtime.decider import CommandContext
from services.runtime.http import request_context
from services.runtime.idempotency import Idempotency, keyed
from services.runtime.principal import Principal, Role

if TYPE_CHECKING:
    from services.review.api import ReviewApi

SESSION_COOKIE = "qq_review_session"  # the reviewer's bearer token, never readable by scripts
LOGIN_COOKIE = "qq_review_login"  # a random value the sign-in form's CSRF token derives from
_PAGE = 20  # cases per queue page


class Session:
    """The signed-in reviewer and the CSRF token their forms carry."""

    def __init__(self, request: Request, token: str, reviewer: Principal) -> None:
        self.api: ReviewApi = request.app.state.review
        self.reviewer = reviewer
        self.csrf = csrf_token(request, "session", token)

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render_page(request, name, status, reviewer=self.reviewer, csrf=self.csrf, **context)

    def context(self, key: Idempotency) -> CommandContext:
        """The form's idempotency key makes a resubmitted form the same command."""
        return request_context(self.api.clock, self.reviewer, None, key)


async def _session(
    request: Request, token: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None
) -> Session:
    if not token:
        raise SignInError("signed_out")
    try:
        principal = decode_token(token, secret=token_secret(request))
    except TokenError as exc:
        raise SignInError("expired" if exc.code == "auth.expired_token" else "invalid") from None
    if principal.role is not Role.REVIEWER:
        raise SignInError("role")
    return Session(request, token, principal)


async def _posted(
    request: Request,
    session: Annotated[Session, Depends(_session)],
    csrf: Annotated[str, Form(max_length=128)],
    token: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
) -> Session:
    """A session whose form carries its CSRF token (SameSite=Strict is the first guard)."""
    check_csrf(request, "session", token, csrf)
    return session


Signed = Annotated[Session, Depends(_session)]
Posted = Annotated[Session, Depends(_posted)]
CaseId = Annotated[str, Path(max_length=64)]


async def _form_key(request: Request, key: Annotated[str, Form(max_length=64)]) -> Idempotency:
    return await keyed(request, key)


Key = Annotated[Idempotency, Depends(_form_key)]  # the form's key, bound to what it carries

_SIGN_IN_WHY = {
    "signed_out": ("请使用审核人员凭证登录", "Sign in with a reviewer token"),
    "expired": ("登录凭证已过期，请重新登录", "The token has expired; sign in again"),
    "invalid": ("登录凭证无效", "The token is not valid"),
    "role": ("只有审核人员可以登录审核台", "Only reviewers may sign in to the console"),
}


def _cookie(response: Response, request: Request, name: str, value: str) -> None:
    # Secure only over HTTPS: on plain-HTTP loopback a Secure cookie would never come back.
    response.set_cookie(
        name, value, path=PREFIX, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def _sign_in_page(request: Request, why: str | None, status: int = 200) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    message = _SIGN_IN_WHY.get(why or "")
    csrf = csrf_token(request, "login", nonce)
    response = render_page(request, "login.html", status, message=message, csrf=csrf)
    _cookie(response, request, LOGIN_COOKIE, nonce)
    return response


router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


@router.get("")
@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/queue", status_code=303)


@router.get("/login")
async def login_form(
    request: Request, why: Annotated[str | None, Query(max_length=16)] = None
) -> HTMLResponse:
    return _sign_in_page(request, why)


@router.post("/login")
async def login(
    request: Request,
    token: Annotated[str, Form(max_length=4096)],
    csrf: Annotated[str, Form(max_length=128)],
    nonce: Annotated[str | None, Cookie(alias=LOGIN_COOKIE)] = None,
) -> Response:
    check_csrf(request, "login", nonce, csrf)
    try:
        principal = decode_token(token.strip(), secret=token_secret(request))
    except TokenError as exc:
        why = "expired" if exc.code == "auth.expired_token" else "invalid"
        return _sign_in_page(request, why, 401)
    if principal.role is not Role.REVIEWER:
        return _sign_in_page(request, "role", 403)
    response = RedirectResponse(f"{PREFIX}/queue", status_code=303)
    _cookie(response, request, SESSION_COOKIE, token.strip())
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def logout(_: Posted) -> RedirectResponse:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.get("/queue")
async def queue(
    request: Request,
    session: Signed,
    case_type: CaseType | Literal[""] = "",  # the filter's "all" sends an empty value
    after: Annotated[str | None, Query(max_length=256)] = None,
) -> HTMLResponse:
    api = session.api
    page = await api.views.queue(
        session.reviewer, api.clock(), case_type=case_type or None, after=after, limit=_PAGE
    )
    return session.page(
        request, "queue.html", view=queue_view(page), case_type=case_type or None, searched=None
    )


@router.post("/search")
async def search(
    request: Request,
    session: Posted,
    id_number: Annotated[str, Form(max_length=64)] = "",
    case_type: Annotated[CaseType | None, Form()] = None,
) -> Response:
    """Posted, so the number stays out of URLs, history and access logs; the page shows
    it masked. No number: the whole queue (seed 004)."""
    if not id_number.strip():
        query = f"?case_type={case_type.value}" if case_type else ""
        return RedirectResponse(f"{PREFIX}/queue{query}", status_code=303)
    api = session.api
    page = await api.views.search(
        session.reviewer, id_number, api.clock(), case_type=case_type, limit=MAX_PAGE
    )
    searched = mask_id_number(normalise(id_number))
    return session.page(
        request, "queue.html", view=queue_view(page), case_type=case_type, searched=searched
    )


@router.get("/cases/{case_id}")
async def case(
    request: Request,
    case_id: CaseId,
    session: Signed,
    done: Annotated[str | None, Query(pattern="^(claimed|approved|rejected)$")] = None,
) -> HTMLResponse:
    view = case_view(await session.api.handlers.case_detail(case_id, session.reviewer))
    return session.page(request, "case.html", case=view, done=done, key=uuid4().hex)


def _decided(case_id: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/cases/{case_id}?done={done}", status_code=303)


@router.post("/cases/{case_id}/claim")
async def claim(case_id: CaseId, session: Posted, key: Key) -> RedirectResponse:
    await session.api.handlers.claim(case_id, session.reviewer, session.context(key))
    return _decided(case_id, "claimed")


@router.post("/cases/{case_id}/approve")
async def approve(case_id: CaseId, session: Posted, key: Key) -> RedirectResponse:
    await session.api.handlers.approve(case_id, session.reviewer, session.context(key))
    return _decided(case_id, "approved")


@router.post("/cases/{case_id}/reject")
async def reject(
    case_id: CaseId,
    session: Posted,
    key: Key,
    reason: Annotated[RejectionReason, Form()],
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
) -> RedirectResponse:
    ctx = session.context(key)
    await session.api.handlers.reject(case_id, session.reviewer, reason, note.strip(), ctx)
    return _decided(case_id, "rejected")


@router.get("/cases/{case_id}/materials/{sha256}")
async def material(
    case_id: CaseId,
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    session: Signed,
) -> Response:
    """The bytes for <img> and PDF links, read with the session cookie."""
    blob = await session.api.handlers.material(case_id, sha256, session.reviewer)
    headers = {
        "Content-Disposition": "inline",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    }
    return Response(blob.data, media_type=blob.content_type, headers=headers)


def mount_console(app: FastAPI) -> None:
    """Add the console's pages and its stylesheet to the review app."""
    app.include_router(router)
    static = StaticFiles(packages=[("services.review", "static")])
    app.mount(f"{PREFIX}/static", static, name="console-static")
