"""What every service's HTTP API answers alike: bilingual refusals, field-level validation
errors, and a safe 500 that never carries a stack trace or what a person typed."""

# Chinese messages use full-width punctuation, as Chinese text should.
# ruff: noqa: RUF001

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, Protocol
from uuid import NAMESPACE_URL, uuid4, uuid5

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.runtime.auth import Principal, configure_auth
from services.runtime.decider import CommandContext, RetriesExhaustedError
from services.runtime.errors import DomainError
from services.runtime.logging import get_logger

log = get_logger(__name__)

# Chinese for pydantic's error types; English is pydantic's own message (it never holds input).
_INVALID_ZH: dict[str, str] = {
    "json_invalid": "请求体不是有效的JSON",
    "missing": "缺少必填字段",
    "extra_forbidden": "不允许的字段",
    "enum": "取值不在允许范围内",
    "literal_error": "取值不在允许范围内",
    "string_type": "应为字符串",
    "string_too_long": "内容过长",
    "model_attributes_type": "请求体应为JSON对象",
    "dict_type": "请求体应为JSON对象",
}


def answer(
    status: int, code: str, field: str | None, message: tuple[str, str], **more: Any
) -> JSONResponse:
    zh, en = message
    body = {"code": code, "field": field, "message": {"zh": zh, "en": en}, **more}
    return JSONResponse(body, status_code=status)


def _field(loc: tuple[Any, ...]) -> str | None:
    """`("body", "id_number")` -> "id_number"; a position in garbled JSON names no field."""
    names = [str(part) for part in loc[1:] if isinstance(part, str)]
    return ".".join(names) or None


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """Field-level reasons in both languages; the rejected input is never echoed back."""
    assert isinstance(exc, RequestValidationError)
    reasons = [
        (
            _field(tuple(e.get("loc", ()))),
            str(e.get("type", "value_error")),
            _INVALID_ZH.get(str(e.get("type")), "字段值无效"),
            str(e.get("msg", "The value is not valid")),
        )
        for e in exc.errors()
    ] or [(None, "value_error", "字段值无效", "The value is not valid")]
    field, kind, zh, en = reasons[0]
    code = "request.json_invalid" if kind == "json_invalid" else "request.invalid"
    errors = [{"field": f, "type": t, "message": {"zh": z, "en": e}} for f, t, z, e in reasons]
    message = (f"请求无效：{zh}", f"The request is not valid: {en}")
    return answer(422, code, field, message, errors=errors)


DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_TOO_LARGE = ("请求内容过大", "The request body is too large")


class BodyTooLargeError(Exception):
    """A request body grew past the app's limit while it was being read."""


def _too_large(limit: int) -> JSONResponse:
    return answer(413, "request.too_large", None, _TOO_LARGE, max_bytes=limit)


def _too_large_in(exc: BaseException) -> bool:
    """The limit was hit (raised in a middleware's task group, it arrives in a group)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_too_large_in(e) for e in exc.exceptions)
    return isinstance(exc, BodyTooLargeError)


def limit_body(app: FastAPI, max_bytes: int) -> None:
    """Refuse bodies above `max_bytes` with 413 before they are parsed: by Content-Length at
    once, and a chunked body as soon as what arrived passes the limit (multipart uploads are
    otherwise spooled whole before any route sees them)."""
    app.add_middleware(_LimitBody, max_bytes=max_bytes)


# Both middlewares are plain ASGI: Starlette's `app.middleware("http")` (BaseHTTPMiddleware)
# runs the rest of the app in a task group of its own and streams its answer through memory
# channels, on every request.


class _LimitBody:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLargeError
            return message

        await self.app(scope, counted, send)


class _Unexpected:
    """A middleware, not an exception handler: Starlette re-raises after a handler for
    Exception, and the server would log the traceback, message and all."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
            return
        except Exception as exc:  # every failure gets the same safe answer
            if started:  # an answer is under way: it cannot be replaced
                raise
            if _too_large_in(exc):
                response = _too_large(scope["app"].state.max_body_bytes)
            else:
                # The class only: an unexpected message might hold what a person typed.
                log.error("API request failed", error=type(exc).__name__)
                response = answer(
                    500,
                    "internal",
                    None,
                    ("服务暂时不可用，请稍后重试", "Something failed; try again later"),
                )
        await response(scope, receive, send)


_BUSY = (
    "该记录正在被其他请求修改，请稍后重试",
    "Other requests keep changing this record; try again",
)


async def _busy(_: Request, exc: Exception) -> JSONResponse:
    """A command lost the race on its stream at every attempt: the client may retry it."""
    return answer(409, "request.busy", None, _BUSY)


def configure_errors(
    app: FastAPI,
    statuses: Mapping[type[DomainError], int],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Answer DomainErrors with the status of their first listed class (422 otherwise),
    validation errors field by field, bodies over `max_body_bytes` with 413, and anything
    unexpected with a bare 500."""

    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        status = next((s for t, s in statuses.items() if isinstance(exc, t)), 422)
        return answer(status, exc.code, exc.input_field, (exc.zh, exc.en))

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RetriesExhaustedError, _busy)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.state.max_body_bytes = max_body_bytes
    limit_body(app, max_body_bytes)
    app.add_middleware(_Unexpected)  # added last: the outermost, so it sees every failure


class ServiceApi(Protocol):
    """What every service's dependencies offer the routes common to all of them."""

    @property
    def ready(self) -> Callable[[], Awaitable[bool]]: ...


def service_app(
    service: str,
    jwt_secret: str,
    open_api: Callable[[], AbstractAsyncContextManager[ServiceApi]],
    statuses: Mapping[type[DomainError], int],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """A service's app with only `/healthz` and `/readyz`: `open_api` builds the dependencies
    when it starts (kept as `app.state.<service>`) and closes them at the end; tokens and
    errors as above."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_api() as api:
            setattr(app.state, service, api)
            yield

    app = FastAPI(title=f"qinqing {service}", version="1", lifespan=lifespan)
    configure_auth(app, jwt_secret)
    configure_errors(app, statuses, max_body_bytes=max_body_bytes)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """The database answers and the service's schema is migrated."""
        api: ServiceApi = getattr(request.app.state, service)
        ready = await api.ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    return app


def request_context(
    clock: Callable[[], datetime], caller: Principal, corr: str | None, key: str | None = None
) -> CommandContext:
    """The context of a command an HTTP request sends. With an Idempotency-Key the command id
    derives from the caller and the key, so a retried request is the same command."""
    command_id = uuid5(NAMESPACE_URL, f"{caller.subject}/{key}") if key else uuid4()
    return CommandContext(command_id, clock(), corr or uuid4().hex, caller.subject)
