"""How the reviewer console answers: its templates and their filters, pages and error pages with
the security headers, the forms' CSRF tokens, and the route class that makes every answer a page."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.

import hashlib
import hmac
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException

from contracts.errors import DomainError
from contracts.vocabulary import KIND_ZH, RELATION_ZH
from services.review.errors import STATUS
from services.review.events import NOTE_MAX, CaseType, RejectionReason
from services.review.queries import mask_pseudonym
from services.runtime.decider import RetriesExhaustedError
from services.runtime.http import RETRY_AFTER_S, UNAVAILABLE_MESSAGE, http_refusal
from services.runtime.logging import get_logger
from services.runtime.outages import UNAVAILABLE

log = get_logger(__name__)

PREFIX = "/console"
CHINA = ZoneInfo("Asia/Shanghai")
# No script at all, styles only from our own file, forms post only to us, never framed.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class SignInError(Exception):
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


def token_secret(request: Request) -> str:
    secret: str = request.app.state.token_secret
    return secret


def csrf_token(request: Request, purpose: str, value: str) -> str:
    """A form's token, bound to the session (or the sign-in form's cookie) it was shown in."""
    message = f"qinqing-console/{purpose}/{value}".encode()
    return hmac.new(token_secret(request).encode(), message, hashlib.sha256).hexdigest()


def check_csrf(request: Request, purpose: str, value: str | None, token: str) -> None:
    if not value or not hmac.compare_digest(csrf_token(request, purpose, value), token):
        raise _FormExpiredError


def render_page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response: HTMLResponse = _TEMPLATES.TemplateResponse(
        request, name, {"reviewer": None, "csrf": "", **context}, status_code=status
    )
    return response


def _error_page(request: Request, status: int, code: str, zh: str, en: str) -> HTMLResponse:
    return render_page(request, "error.html", status, code=code, zh=zh, en=en)


class ConsoleRoute(APIRoute):
    """Every console answer is a page: refusals, bad input and failures render the bilingual
    error page (never a stack trace), a missing session goes to the sign-in form, and every
    page carries the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handle(request)
            except SignInError as exc:
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
