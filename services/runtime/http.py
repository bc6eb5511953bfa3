"""What every service's HTTP API answers alike: one bilingual shape for every refusal, field-level
validation errors, a 503 while a dependency is down, and a safe 500 that never carries a stack
trace or what a person typed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Protocol
from uuid import NAMESPACE_URL, uuid4, uuid5

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.errors import DomainError
from services.runtime.auth import authenticated, configure_auth
from services.runtime.decider import CommandContext, RetriesExhaustedError
from services.runtime.errors import error_body
from services.runtime.idempotency import Idempotency, IdempotencyKey
from services.runtime.logging import get_logger
from services.runtime.outages import UNAVAILABLE
from services.runtime.principal import Principal

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
    status: int,
    code: str,
    field: str | None,
    message: tuple[str, str],
    *,
    headers: Mapping[str, str] | None = None,
    **more: Any,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field, **more), status, headers)


def _field(loc: tuple[Any, ...]) -> str | None:
    """`("body", "id_number")` -> "id_number"; a position in garbled JSON names no field."""
    names = [str(part) for part in loc[1:] if isinstance(part, str)]
    return ".".join(names) or None


def _reason_zh(error: Mapping[str, Any]) -> str:
    """A published type (contracts' PydanticCustomError) brings its own Chinese."""
    own = (error.get("ctx") or {}).get("zh")
    return str(own or _INVALID_ZH.get(str(error.get("type")), "字段值无效"))


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """Field-level reasons in both languages; the rejected input is never echoed back."""
    assert isinstance(exc, RequestValidationError)
    reasons = [
        (
            _field(tuple(e.get("loc", ()))),
            str(e.get("type", "value_error")),
            _reason_zh(e),
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


def _too_large(limit: int) -> JSONResponse:
    return answer(413, "request.too_large", None, _TOO_LARGE, max_bytes=limit)


# Starlette's and FastAPI's own refusals, raised before any route runs: no such route, a method
# the route lacks (405 keeps its Allow header), a body the parser cannot read (bytes that do not
# decode, JSON nested deeper than the parser goes, multipart without a boundary). Their `detail`
# is not passed on: a parser's message may quote the body.
_HTTP_REFUSALS: dict[int, tuple[str, tuple[str, str]]] = {
    400: ("request.malformed", ("无法读取请求内容", "The request body cannot be read")),
    404: ("request.not_found", ("请求的地址不存在", "Nothing is found at this address")),
    405: (
        "request.method_not_allowed",
        ("该地址不支持此请求方法", "This address does not take this method"),
    ),
}
_REFUSED = ("request.refused", ("请求被拒绝", "The request was refused"))


def http_refusal(exc: HTTPException) -> tuple[str, tuple[str, str]]:
    """The code and message of a refusal Starlette or FastAPI raised."""
    return _HTTP_REFUSALS.get(exc.status_code, _REFUSED)


async def _http_refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code, message = http_refusal(exc)
    return answer(exc.status_code, code, None, message, headers=exc.headers)


RETRY_AFTER_S = 3  # about how long a PostgreSQL restart takes
UNAVAILABLE_MESSAGE = (
    "服务暂时不可用，请稍后重试",
    "The service is briefly unavailable; try again shortly",
)


def _unavailable() -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return answer(503, "service.unavailable", None, UNAVAILABLE_MESSAGE, headers=headers)


def limit_body(app: FastAPI, max_bytes: int) -> None:
    """Refuse bodies above `max_bytes` with 413 before they are parsed: by Content-Length at
    once, and a chunked body as soon as what arrived passes the limit (multipart uploads are
    otherwise spooled whole before any route sees them)."""
    app.add_middleware(_LimitBody, max_bytes=max_bytes)


# Both middlewares are plain ASGI: Starlette's `app.middleware("http")` (BaseHTTPMiddleware)
# runs the rest of the app in a task group of its own and streams its answer through memory
# channels, on every request.

_GONE: Message = {"type": "http.disconnect"}


class _LimitBody:
    """Not FastAPI's `max_body_size`: Starlette's limiter answers in plain text, and replaces
    any answer to a request whose declared length is over the limit with its own."""

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
        seen, refused = 0, False

        async def counted() -> Message:
            # The 413 is sent from here rather than raised: FastAPI turns any error while it
            # reads a body into a 400 of its own. To the app the client has gone away, and
            # whatever it answers after that goes nowhere (routes read their body first).
            nonlocal seen, refused
            if refused:
                return _GONE
            message = await receive()
            seen += len(message.get("body", b""))
            if seen <= self.max_bytes:
                return message
            refused = True
            await _too_large(self.max_bytes)(scope, receive, send)
            return _GONE

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except Exception:
            if not refused:
                raise
            # The app failed on the body it did not get; the client already has its 413.


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
            # The class only: an unexpected message might hold what a person typed.
            if isinstance(exc, UNAVAILABLE):  # a dependency is down, not a bug
                log.warning("API request failed: a dependency is down", error=type(exc).__name__)
                response = _unavailable()
            else:
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
    validation errors field by field, Starlette's refusals with their status, bodies over
    `max_body_bytes` with 413, a dependency that is down with 503, and anything unexpected with
    a bare 500: every one in the shape of `error_body`."""

    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        status = next((s for t, s in statuses.items() if isinstance(exc, t)), 422)
        return answer(status, exc.code, exc.input_field, (exc.zh, exc.en))

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RetriesExhaustedError, _busy)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_refused)
    limit_body(app, max_body_bytes)
    app.add_middleware(_Unexpected)  # added last: the outermost, so it sees every failure


class ServiceApi(Protocol):
    """What every service's dependencies offer the routes common to all of them."""

    @property
    def ready(self) -> Callable[[], Awaitable[bool]]: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


def _service_api(request: Request) -> ServiceApi:
    api: ServiceApi = getattr(request.app.state, request.app.state.service)
    return api


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
    app.state.service = service
    configure_auth(app, jwt_secret)
    configure_errors(app, statuses, max_body_bytes=max_body_bytes)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """The database answers and the service's schema is migrated."""
        ready = await _service_api(request).ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    return app


def request_context(
    clock: Callable[[], datetime],
    caller: Principal,
    corr: str | None,
    key: Idempotency | None = None,
) -> CommandContext:
    """The context of a command an HTTP request sends. With an idempotency key the command id
    derives from the caller and the key, so a retried request is the same command, and the
    command keeps the request's fingerprint, so the key cannot name another request."""
    if key is None:
        return CommandContext(uuid4(), clock(), corr or uuid4().hex, caller.subject)
    command_id = uuid5(NAMESPACE_URL, f"{caller.subject}/{key.key}")
    return CommandContext(
        command_id, clock(), corr or uuid4().hex, caller.subject, fingerprint=key.fingerprint
    )


Correlation = Annotated[str | None, Header(alias="X-Correlation-ID", max_length=128)]


# async: FastAPI would run a plain `def` dependency in a worker thread on every request
async def command_context(
    request: Request,
    caller: Annotated[Principal, Depends(authenticated)],
    corr: Correlation = None,
    key: IdempotencyKey = None,
) -> CommandContext:
    """The context of the command a route sends, on the service's clock. The caller is the
    token's (the route's own role check admits it; FastAPI decodes the token once for both)."""
    return request_context(_service_api(request).clock, caller, corr, key)


# What every command route takes: a retried request with its Idempotency-Key is the same
# command, and answers as the first did; without a key, each request is a command of its own.
Command = Annotated[CommandContext, Depends(command_context)]
