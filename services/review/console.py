"""The reviewer console: server-rendered pages under /console (sign in with a reviewer token,
the queue, a case with its materials, approve or reject) on the same handlers as the API."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.

import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import uuid4
from zoneinfo import ZoneInfo

from fastapi import Cookie, Depends, FastAPI, Form, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute, APIRouter
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException

from services.binding.letter import KIND_ZH, RELATION_ZH
from services.identity.id_number import mask_id_number, normalise
from services.review.errors import STATUS
from services.review.events import NOTE_MAX, CaseType, RejectionReason
from services.review.queries import MAX_PAGE, mask_pseudonym
from services.review.schemas import case_view, queue_view
from services.runtime.auth import Principal, Role, TokenError, decode_token
from services.runtime.decider import CommandContext, RetriesExhaustedError
from services.runtime.errors import DomainError
from services.runtime.http import (
    RETRY_AFTER_S,
    UNAVAILABLE_MESSAGE,
    http_refusal,
    request_context,
)
from services.runtime.idempotency import Idempotency, keyed
from services.runtime.logging import get_logger
from services.runtime.outages import UNAVAILABLE

if TYPE_CHECKING:
    from services.review.api import ReviewApi

log = get_logger(__name__)

PREFIX = "/console"
SESSION_COOKIE = "qq_review_session"  # the reviewer's bearer token, never readable by scripts
LOGIN_COOKIE = "qq_review_login"  # a random value the sign-in form's CSRF token derives from
CHINA = ZoneInfo("Asia/Shanghai")
_PAGE = 20  # cases per queue page
# No script at all, styles only from our own file, forms post only to us, never framed.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class _SignInError(Exception):
    """No valid reviewer session: the page sends the browser to the sign-in form."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _FormExpiredError(DomainError):
    code = "console.csrf"
    message_zh = "表单已失效，请刷新页面后重试"
    message_en = "The form has expired; reload the page and try again"


# Pages for what is not a domain refusal: code, Chinese, English.
_BUSY = ("case.busy", "该审核业务正在被处理，请稍后重试", "The case is busy; try again")
_INVALID = (
    "request.invalid",
    "请求无效，请检查填写的内容",
    "The request is not valid; check the form",
)
_FAILED = ("internal", "服务暂时不可用，请稍后重试", "Something failed; try again later")
_UNAVAILABLE = ("service.unavailable", *UNAVAILABLE_MESSAGE)


# The API's statuses of the domain's refusals, and a stale form's.
_STATUS: dict[type[DomainError], int] = {**STATUS, _FormExpiredError: 403}


def _age(seconds: int) -> str:
    minutes = seconds // 60
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}天{hours}小时 · {days} d {hours} h"
    if hours:
        return f"{hours}小时{mins}分 · {hours} h {mins} min"
    return f"{mins}分钟 · {mins} min"


def _china_time(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def material_src(case_id: str, sha256: str) -> str:
    return f"{PREFIX}/cases/{case_id}/materials/{sha256}"


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=PackageLoader("services.review", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
    )
    env.filters.update(age=_age, china_time=_china_time, masked=mask_pseudonym)
    env.globals.update(
        kind_zh={k.value: v for k, v in KIND_ZH.items()},
        relation_zh={k.value: v for k, v in RELATION_ZH.items()},
        case_types=list(CaseType),
        reasons=list(RejectionReason),
        note_max=NOTE_MAX,
        material_src=material_src,
    )
    return Jinja2Templates(env=env)


_TEMPLATES = _templates()


def _secret(request: Request) -> str:
    secret: str = request.app.state.token_secret
    return secret


def _csrf(request: Request, purpose: str, value: str) -> str:
    """A form's token, bound to the session (or the sign-in form's cookie) it was shown in."""
    message = f"qinqing-console/{purpose}/{value}".encode()
    return hmac.new(_secret(request).encode(), message, hashlib.sha256).hexdigest()


def _check_csrf(request: Request, purpose: str, value: str | None, token: str) -> None:
    if not value or not hmac.compare_digest(_csrf(request, purpose, value), token):
        raise _FormExpiredError


def _page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response: HTMLResponse = _TEMPLATES.TemplateResponse(
        request, name, {"reviewer": None, "csrf": "", **context}, status_code=status
    )
    return response


def _error_page(request: Request, status: int, code: str, zh: str, en: str) -> HTMLResponse:
    return _page(request, "error.html", status, code=code, zh=zh, en=en)


class _ConsoleRoute(APIRoute):
    """Every console answer is a page: refusals, bad input and failures render the bilingual
    error page (never a stack trace), a missing session goes to the sign-in form, and every
    page carries the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handle(request)
            except _SignInError as exc:
                response = RedirectResponse(f"{PREFIX}/login?why={exc.why}", status_code=303)
            except DomainError as exc:
                status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 422)
                response = _error_page(request, status, exc.code, exc.zh, exc.en)
            except RetriesExhaustedError:
                response = _error_page(request, 409, *_BUSY)
            except RequestValidationError:  # what was typed is never echoed back
                response = _error_page(request, 422, *_INVALID)
            except HTTPException as exc:  # a body FastAPI could not read
                code, (zh, en) = http_refusal(exc)
                response = _error_page(request, exc.status_code, code, zh, en)
            except UNAVAILABLE as exc:
                log.warning(
                    "console request failed: a dependency is down", error=type(exc).__name__
                )
                response = _error_page(request, 503, *_UNAVAILABLE)
                response.headers["Retry-After"] = str(RETRY_AFTER_S)
            except Exception as exc:  # noqa: BLE001 - every failure gets the same safe page
                log.error("console request failed", error=type(exc).__name__)
                response = _error_page(request, 500, *_FAILED)
            if response.headers.get("content-type", "").startswith("text/html"):
                response.headers.update(_PAGE_HEADERS)
            return response

        return guarded


class Session:
    """The signed-in reviewer and the CSRF token their forms carry."""

    def __init__(self, request: Request, token: str, reviewer: Principal) -> None:
        self.api: ReviewApi = request.app.state.review
        self.reviewer = reviewer
        self.csrf = _csrf(request, "session", token)

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return _page(request, name, status, reviewer=self.reviewer, csrf=self.csrf, **context)

    def context(self, key: Idempotency) -> CommandContext:
        """The form's idempotency key makes a resubmitted form the same command."""
        return request_context(self.api.clock, self.reviewer, None, key)


async def _session(
    request: Request, token: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None
) -> Session:
    if not token:
        raise _SignInError("signed_out")
    try:
        principal = decode_token(token, secret=_secret(request))
    except TokenError as exc:
        raise _SignInError("expired" if exc.code == "auth.expired_token" else "invalid") from None
    if principal.role is not Role.REVIEWER:
        raise _SignInError("role")
    return Session(request, token, principal)


async def _posted(
    request: Request,
    session: Annotated[Session, Depends(_session)],
    csrf: Annotated[str, Form(max_length=128)],
    token: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
) -> Session:
    """A session whose form carries its CSRF token (SameSite=Strict is the first guard)."""
    _check_csrf(request, "session", token, csrf)
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
    csrf = _csrf(request, "login", nonce)
    response = _page(request, "login.html", status, message=message, csrf=csrf)
    _cookie(response, request, LOGIN_COOKIE, nonce)
    return response


def _routes(router: APIRouter) -> None:
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
        _check_csrf(request, "login", nonce, csrf)
        try:
            principal = decode_token(token.strip(), secret=_secret(request))
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

    def decided(case_id: str, done: str) -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/cases/{case_id}?done={done}", status_code=303)

    @router.post("/cases/{case_id}/claim")
    async def claim(case_id: CaseId, session: Posted, key: Key) -> RedirectResponse:
        await session.api.handlers.claim(case_id, session.reviewer, session.context(key))
        return decided(case_id, "claimed")

    @router.post("/cases/{case_id}/approve")
    async def approve(case_id: CaseId, session: Posted, key: Key) -> RedirectResponse:
        await session.api.handlers.approve(case_id, session.reviewer, session.context(key))
        return decided(case_id, "approved")

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
        return decided(case_id, "rejected")

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
    router = APIRouter(prefix=PREFIX, route_class=_ConsoleRoute, include_in_schema=False)
    _routes(router)
    app.include_router(router)
    static = StaticFiles(packages=[("services.review", "static")])
    app.mount(f"{PREFIX}/static", static, name="console-static")
