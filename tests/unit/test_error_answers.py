"""Every service's app answers what FastAPI and Starlette refuse before a route runs (unknown
routes, wrong methods, bodies that cannot be read) in the one error shape, never
`{"detail": ...}`, a 500 or a trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.binding.api import create_app as binding_app
from services.identity.api import create_app as identity_app
from services.review.api import create_app as review_app
from services.runtime.auth import issue_token
from services.runtime.principal import Principal, Role

SECRET = "s" * 32


class _ClockOnly:
    """Every request here is refused before a route runs: a route that ran would fail on this.
    A command route's context is built (on the clock) before its body's refusal is raised."""

    clock = staticmethod(lambda: datetime.now(UTC))


@asynccontextmanager
async def _no_dependencies() -> AsyncIterator[Any]:
    yield _ClockOnly()


# Each app with a route that takes JSON and one that takes a form (identity and review's API
# take no form: there, a form goes to the JSON route, as the caller it admits).
APPS: dict[str, tuple[Callable[..., FastAPI], str, str]] = {
    "identity": (identity_app, "/persons", "/persons"),
    "binding": (binding_app, "/bindings", "/materials"),
    "review": (review_app, "/cases/search", "/cases/search"),
}
CALLERS = {
    "/persons": Principal("ops-1", Role.OPERATOR),
    "/cases/search": Principal("rev-1", Role.REVIEWER, ("360100",)),
}


@pytest.fixture(params=sorted(APPS))
async def service(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    create, json_route, form_route = APPS[request.param]
    app = create(SECRET, _no_dependencies)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)  # an exception reaching the server fails
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client, json_route, form_route


def assert_refused(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["code"] == code
    assert set(body["message"]) == {"zh", "en"}
    assert all(body["message"].values())
    assert "detail" not in body
    return body


JSON = {"Content-Type": "application/json"}


async def test_an_unknown_route_answers_404(service: tuple[httpx.AsyncClient, str, str]) -> None:
    client, _, _ = service
    assert_refused(await client.get("/no/such/route"), 404, "request.not_found")


async def test_a_wrong_method_answers_405_and_says_which_are_allowed(
    service: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, json_route, _ = service
    answer = await client.delete(json_route)
    assert_refused(answer, 405, "request.method_not_allowed")
    assert answer.headers["Allow"] == "POST"


async def test_json_nested_deeper_than_the_parser_goes_answers_400(
    service: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, json_route, _ = service
    deep = b"[" * 100_000 + b"]" * 100_000  # within the body limit
    assert_refused(
        await client.post(json_route, content=deep, headers=JSON), 400, "request.malformed"
    )


@pytest.mark.parametrize(
    "body",
    [b'{"member_name": "\xe9"}', b'{"id_number": "\xff\xfe"}', b"\xc3\x28"],
    ids=["latin-1", "stray-bytes", "truncated-sequence"],
)
async def test_json_that_is_not_utf8_answers_400(
    service: tuple[httpx.AsyncClient, str, str], body: bytes
) -> None:
    client, json_route, _ = service
    assert_refused(
        await client.post(json_route, content=body, headers=JSON), 400, "request.malformed"
    )


async def test_multipart_without_a_boundary_answers_in_the_error_shape(
    service: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, json_route, form_route = service
    headers = {"Content-Type": "multipart/form-data"}
    if form_route in CALLERS:
        token = issue_token(CALLERS[form_route], timedelta(minutes=5), secret=SECRET)
        headers["Authorization"] = f"Bearer {token}"
    answer = await client.post(form_route, content=b"--x\r\n\r\nhello\r\n--x--", headers=headers)
    if form_route == json_route:  # not JSON, so not a body the route takes
        assert_refused(answer, 422, "request.invalid")
    else:  # the form parser cannot even begin
        assert_refused(answer, 400, "request.malformed")


async def test_the_review_console_shows_an_unreadable_form_as_a_400_page() -> None:
    app = review_app(SECRET, _no_dependencies)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
            answer = await client.post(
                "/console/login", content=b"x", headers={"Content-Type": "multipart/form-data"}
            )
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "request.malformed" in answer.text
