"""Every route that is not a GET, sent again as it was, answers as it did the first time and has
no second effect: a command route because its Idempotency-Key makes the retry the same command
(and the same key with another body is refused, 422 request.key_reused); an upload because it
is stored by its content; the provider's callback because a check takes one outcome; a search
because it only reads. The routes come from the apps themselves, so a new route without an
entry in the table below fails."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any, cast

import asyncpg
import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from services.binding.api import BindingApi
from services.binding.api import create_app as binding_app
from services.identity.api import SIGNATURE_HEADER
from services.identity.api import create_app as identity_app
from services.identity.face_provider import SimulatedOutcome, sign_callback
from services.identity.person_events import PaymentPasswordRejected
from services.review.api import create_app as review_app
from services.review.console import LOGIN_COOKIE, SESSION_COOKIE
from services.runtime.auth import (
    ConfirmationMethod,
    Principal,
    Role,
    issue_confirmation,
    issue_token,
)
from services.runtime.events import EventStore
from tests.contract.blob_store import JPEG, PDF, PNG
from tests.unit.apps import SECRET, NoRows, documents, routes
from tests.unit.binding.builders import HOLDER, NOW
from tests.unit.binding.test_handlers import (
    FATHER_ID,
    HOLDER_ID,
    SON_ID,
    TOKEN_SECRET,
    by_id,
)
from tests.unit.binding.test_handlers import World as BindingWorld
from tests.unit.identity.test_api import (
    CALLBACK_SECRET,
    FIRST,
    NEW,
    PERSON,
    PLACE,
    WRONG,
    activated,
    passed_check,
    put_password,
    register,
    token,
)
from tests.unit.identity.test_api import World as IdentityWorld
from tests.unit.review.builders import NANCHANG
from tests.unit.review.test_api import OPERATOR, bearer
from tests.unit.review.test_api import World as ReviewWorld


class Kind(Enum):
    COMMAND = "its Idempotency-Key names the command"
    CONTENT = "stored by its content"
    OUTCOME = "a face check takes one outcome"
    QUERY = "reads only"


@dataclass(frozen=True)
class Call:
    """A route's request on a stage set for it to succeed, and another body for its key."""

    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    other: dict[str, Any] | None = None  # None where the route takes no body, or no key
    files: dict[str, tuple[str, bytes, str]] | None = None
    content: bytes | None = None  # sent as is (the provider signs the bytes)


@dataclass
class Stage:
    """The three services on their in-memory adapters, each answering an ASGI client."""

    identity: IdentityWorld = field(default_factory=IdentityWorld)
    binding: BindingWorld = field(default_factory=BindingWorld)
    review: ReviewWorld = field(default_factory=ReviewWorld)
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    async def effects(self, service: str) -> int:
        """Events in the service's log, and for binding the materials it stores."""
        stores: dict[str, EventStore] = {
            "identity": self.identity.handlers.deps.store,
            "binding": self.binding.store,
            "review": self.review.handlers.deps.store,
        }
        events = len([e async for e in stores[service].read_all()])
        return events + (len(self.binding.blobs.blobs) if service == "binding" else 0)


def _binding_api(world: BindingWorld) -> Callable[[], AbstractAsyncContextManager[BindingApi]]:
    @asynccontextmanager
    async def open_api() -> AsyncIterator[BindingApi]:
        async def ready() -> bool:
            return True

        # The command routes read nothing through the pool (the family views do).
        yield BindingApi(
            world.handlers, cast(asyncpg.Pool, NoRows()), "binding", lambda: NOW, ready
        )

    return open_api


@pytest.fixture
async def stage() -> AsyncIterator[Stage]:
    staged = Stage()
    for pseudonym, number in ((HOLDER, HOLDER_ID), ("p-father", FATHER_ID), ("p-son", SON_ID)):
        await staged.binding.person(pseudonym, number)
    apps = {
        "identity": identity_app(SECRET, staged.identity.open),
        "binding": binding_app(SECRET, _binding_api(staged.binding)),
        "review": review_app(SECRET, staged.review.open),
    }
    async with AsyncExitStack() as stack:
        for name, app in apps.items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)  # an exception reaching the server fails
            staged.clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=f"http://{name}")
            )
        yield staged


# ---------------------------------------------------------------------------- identity


def _insured_place(place: str) -> dict[str, str]:
    return {"insured_place": place}


async def _me(stage: Stage) -> dict[str, str]:
    return token(Role.INSURED, await register(stage.clients["identity"]))


async def _registration(stage: Stage) -> Call:
    other = PERSON | {"id_number": "360426199101010047"}
    return Call("/persons", token(Role.OPERATOR), PERSON, other)


async def _new_place(stage: Stage) -> Call:
    me = await _me(stage)
    return Call("/persons/me/insured-places", me, _insured_place("110105"), _insured_place(PLACE))


async def _place_switch(stage: Stage) -> Call:
    me = await _me(stage)
    added = await stage.clients["identity"].post(
        "/persons/me/insured-places", json=_insured_place("110105"), headers=me
    )
    assert added.status_code == 204, added.text
    url = "/persons/me/current-insured-place"
    return Call(url, me, _insured_place("110105"), _insured_place(PLACE))


async def _activation(stage: Stage) -> Call:
    me = await _me(stage)
    check = await passed_check(stage.clients["identity"], stage.identity, me, "activation")
    body = {"channel": "wechat", "face_check_id": check}
    return Call("/persons/me/voucher-activations", me, body, body | {"channel": "alipay"})


async def _first_password(stage: Stage) -> Call:
    me = await activated(stage.clients["identity"], stage.identity)
    body = {"password": FIRST, "channel": "wechat"}
    return Call("/persons/me/payment-password", me, body, body | {"password": NEW})


async def _password_check(stage: Stage) -> Call:
    client = stage.clients["identity"]
    me = await activated(client, stage.identity)
    assert (await put_password(client, me, FIRST)).status_code == 204
    url = "/persons/me/payment-password/verification"
    return Call(url, me, {"password": FIRST}, {"password": WRONG})


async def _face_check(stage: Stage) -> Call:
    stage.identity.simulator.default = SimulatedOutcome(answers=False)  # nothing in between
    me = await _me(stage)
    return Call("/face-checks", me, {"purpose": "activation"}, {"purpose": "password_reset"})


async def _provider_answer(stage: Stage) -> Call:
    client = stage.clients["identity"]
    stage.identity.simulator.default = SimulatedOutcome(answers=False)  # the callback answers
    me = await _me(stage)
    check_id = (
        await client.post("/face-checks", json={"purpose": "activation"}, headers=me)
    ).json()
    body = httpx.Request(
        "POST", "/", json={"check_id": check_id["check_id"], "outcome": "verified"}
    )
    signed = {SIGNATURE_HEADER: sign_callback(CALLBACK_SECRET, body.content)}
    return Call("/face-provider/callback", signed | {"Content-Type": "application/json"},
                content=body.content)  # fmt: skip


# ---------------------------------------------------------------------------- binding


def _holder() -> dict[str, str]:
    issued = issue_token(Principal(HOLDER, Role.INSURED), timedelta(hours=1), secret=SECRET)
    return {"Authorization": f"Bearer {issued}"}


def _form(number: str, **changes: Any) -> dict[str, Any]:
    return by_id(number, **changes).model_dump(mode="json", exclude_none=True)


async def _binding_request(stage: Stage) -> Call:
    return Call("/bindings", _holder(), _form(FATHER_ID), _form(SON_ID, relation="child"))


async def _upload(stage: Stage) -> Call:
    return Call("/materials", _holder(), files={"file": ("page.png", PNG, "image/png")})


async def _signature(stage: Stage) -> Call:
    request_id = (await stage.binding.ask(by_id())).request_id
    signature, other = await stage.binding.blobs.put(PNG), await stage.binding.blobs.put(PNG + b"2")
    url = f"/bindings/{request_id}/commitment-letter/signature"
    body = {"signature_sha256": signature.sha256}
    return Call(url, _holder(), body, {"signature_sha256": other.sha256})


async def _materials(stage: Stage) -> Call:
    request_id = (await stage.binding.ask(by_id())).request_id
    await stage.binding.signed(request_id)
    jpeg, pdf = await stage.binding.blobs.put(JPEG), await stage.binding.blobs.put(PDF)
    body = {"holder_household": jpeg.sha256, "member_household": pdf.sha256}
    other = {"holder_household": pdf.sha256, "member_household": jpeg.sha256}
    return Call(f"/bindings/{request_id}/materials", _holder(), body, other)


async def _revocation(stage: Stage) -> Call:
    request_id = await stage.binding.bound_by_proxy()
    bound = (await stage.binding.handlers.holder(HOLDER)).requests[request_id]

    def proof() -> dict[str, str]:
        method = ConfirmationMethod.PAYMENT_PASSWORD
        confirmation = issue_confirmation(HOLDER, method, secret=TOKEN_SECRET, now=NOW)
        return {"kind": bound.kind.value, "confirmation": confirmation}

    return Call(f"/family/members/{bound.member}/revocation", _holder(), proof(), proof())


# ---------------------------------------------------------------------------- review


async def _search(stage: Stage) -> Call:
    return Call("/cases/search", bearer(NANCHANG), {"id_number": "360426199101010047"})


Scene = Callable[[Stage], Awaitable[Call]]  # sets the stage for the route, gives its request


def _decision(
    verb: str, body: dict[str, str] | None = None, other: dict[str, str] | None = None
) -> Scene:
    async def scene(stage: Stage) -> Call:
        case_id = await stage.review.case()
        return Call(f"/cases/{case_id}/{verb}", bearer(NANCHANG), body, other)

    return scene


async def _policy(stage: Stage) -> Call:
    url = "/policies/36/member_binding"
    return Call(url, bearer(OPERATOR), {"mode": "auto_approve"}, {"mode": "rules"})


@dataclass(frozen=True)
class Entry:
    kind: Kind
    scene: Scene
    fresh: frozenset[str] = frozenset()  # fields each answer makes anew (compared as present)


def command(scene: Scene, *fresh: str) -> Entry:
    return Entry(Kind.COMMAND, scene, frozenset(fresh))


TABLE: dict[tuple[str, str, str], Entry] = {
    ("identity", "POST", "/persons"): command(_registration),
    ("identity", "POST", "/persons/me/insured-places"): command(_new_place),
    ("identity", "PUT", "/persons/me/current-insured-place"): command(_place_switch),
    ("identity", "POST", "/persons/me/voucher-activations"): command(_activation),
    ("identity", "PUT", "/persons/me/payment-password"): command(_first_password),
    # A match answers with a fresh single-use proof each time it is asked.
    ("identity", "POST", "/persons/me/payment-password/verification"): command(
        _password_check, "confirmation"
    ),
    ("identity", "POST", "/face-checks"): command(_face_check),
    ("identity", "POST", "/face-provider/callback"): Entry(Kind.OUTCOME, _provider_answer),
    ("binding", "POST", "/bindings"): command(_binding_request),
    ("binding", "POST", "/materials"): Entry(Kind.CONTENT, _upload),
    ("binding", "POST", "/bindings/{request_id}/commitment-letter/signature"): command(_signature),
    ("binding", "POST", "/bindings/{request_id}/materials"): command(_materials),
    ("binding", "POST", "/family/members/{member}/revocation"): command(_revocation),
    ("review", "POST", "/cases/search"): Entry(Kind.QUERY, _search),
    ("review", "POST", "/cases/{case_id}/claim"): command(_decision("claim")),
    ("review", "POST", "/cases/{case_id}/approve"): command(_decision("approve")),
    ("review", "POST", "/cases/{case_id}/reject"): command(
        _decision("reject", {"reason": "materials_unclear"}, {"reason": "other"})
    ),
    ("review", "PUT", "/policies/{region}/{case_type}"): command(_policy),
}


async def _send(
    stage: Stage, route: tuple[str, str, str], call: Call, body: dict[str, Any] | None
) -> httpx.Response:
    service, method, _ = route
    return await stage.clients[service].request(
        method,
        call.url,
        headers=call.headers | {"Idempotency-Key": "retry-1"},
        json=body,
        files=call.files,
        content=call.content,
    )


def _answer(response: httpx.Response, fresh: frozenset[str]) -> tuple[int, Any]:
    body = response.json() if response.content else None
    if isinstance(body, dict):
        body = {name: bool(v) if name in fresh else v for name, v in body.items()}
    return response.status_code, body


DOCUMENTS = documents()


def test_every_route_that_is_not_a_get_has_an_entry_in_the_table() -> None:
    assert {r for r in routes() if r[1] != "GET"} == set(TABLE)


@pytest.mark.parametrize("route", sorted(TABLE), ids=" ".join)
def test_a_route_documents_the_idempotency_key_exactly_when_it_sends_commands(
    route: tuple[str, str, str],
) -> None:
    service, method, path = route
    operation = DOCUMENTS[service]["paths"][path][method.lower()]
    headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
    assert ("Idempotency-Key" in headers) == (TABLE[route].kind is Kind.COMMAND)


@pytest.mark.parametrize("route", sorted(TABLE), ids=" ".join)
async def test_a_route_sent_again_with_its_key_answers_the_same_and_has_one_effect(
    stage: Stage, route: tuple[str, str, str]
) -> None:
    entry, service = TABLE[route], route[0]
    call = await entry.scene(stage)
    before = await stage.effects(service)
    first = await _send(stage, route, call, call.json)
    once = await stage.effects(service)
    again = await _send(stage, route, call, call.json)
    assert first.status_code < 300, first.text
    assert _answer(again, entry.fresh) == _answer(first, entry.fresh)
    assert await stage.effects(service) == once
    assert (once > before) == (entry.kind is not Kind.QUERY)
    if call.other is not None:
        reused = await _send(stage, route, call, call.other)
        assert (reused.status_code, reused.json()["code"]) == (422, "request.key_reused")
        assert set(reused.json()["message"]) == {"zh", "en"}
        assert await stage.effects(service) == once


async def test_a_retried_change_of_the_payment_password_records_no_failed_attempt(
    stage: Stage,
) -> None:
    # Compared again, the old password would no longer match the hash it had just replaced.
    client = stage.clients["identity"]
    me = await activated(client, stage.identity)
    assert (await put_password(client, me, FIRST)).status_code == 204
    retried = me | {"Idempotency-Key": "change-1"}
    answers = [await put_password(client, retried, NEW, old_password=FIRST) for _ in range(2)]
    assert [a.status_code for a in answers] == [204, 204]
    events = [e async for e in stage.identity.handlers.deps.store.read_all()]
    assert not [e for e in events if e.type == PaymentPasswordRejected.__name__]
    assert (await client.post(
        "/persons/me/payment-password/verification", json={"password": NEW}, headers=me
    )).json()["matched"]  # fmt: skip


# ---------------------------------------------------------------------------- the console

SESSION = issue_token(NANCHANG, timedelta(hours=1), secret=SECRET)
NONCE = "n" * 32  # the sign-in form's cookie


def _csrf(purpose: str, value: str) -> str:
    """The token the console's forms carry, bound to the session (or the sign-in cookie)."""
    message = f"qinqing-console/{purpose}/{value}".encode()
    return hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()


SIGNED_IN = {"Cookie": f"{SESSION_COOKIE}={SESSION}"}
FORM = {"csrf": _csrf("session", SESSION)}
# Each posted page: its form (a decision's with the hidden key its case page gave it), the
# cookie it goes with, another form for the same key, and what makes a resubmission harmless.
CONSOLE: dict[str, tuple[Kind, dict[str, str], dict[str, str], dict[str, str] | None]] = {
    "/console/login": (
        Kind.QUERY,  # sets the session cookie, sends no command
        {"token": SESSION, "csrf": _csrf("login", NONCE)},
        {"Cookie": f"{LOGIN_COOKIE}={NONCE}"},
        None,
    ),
    "/console/logout": (Kind.QUERY, FORM, SIGNED_IN, None),
    "/console/search": (Kind.QUERY, FORM | {"id_number": "360426199101010047"}, SIGNED_IN, None),
    "/console/cases/{case_id}/claim": (Kind.COMMAND, FORM | {"key": "form-1"}, SIGNED_IN, None),
    "/console/cases/{case_id}/approve": (Kind.COMMAND, FORM | {"key": "form-1"}, SIGNED_IN, None),
    "/console/cases/{case_id}/reject": (
        Kind.COMMAND,
        FORM | {"key": "form-1", "reason": "other", "note": "模糊"},
        SIGNED_IN,
        FORM | {"key": "form-1", "reason": "other", "note": "缺页"},
    ),
}


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI keeps an included router whole (the console's), its paths prefixed already.
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(included.routes)


def test_every_posted_page_of_the_console_has_an_entry_in_its_table() -> None:
    app = review_app(SECRET, ReviewWorld().open)
    posted = {
        route.path
        for route in _api_routes(app.routes)
        if route.path.startswith("/console")
        for method in route.methods
        if method != "GET"
    }
    assert posted == set(CONSOLE)


@pytest.mark.parametrize("path", sorted(CONSOLE))
async def test_a_console_form_sent_again_answers_the_same_page_and_has_one_effect(
    stage: Stage, path: str
) -> None:
    kind, form, cookie, other = CONSOLE[path]
    url = path.replace("{case_id}", await stage.review.case())
    client = stage.clients["review"]
    before = await stage.effects("review")
    first = await client.post(url, data=form, headers=cookie)
    once = await stage.effects("review")
    again = await client.post(url, data=form, headers=cookie)
    assert first.status_code in (200, 303), first.text
    assert (again.status_code, again.headers.get("Location")) == (
        first.status_code,
        first.headers.get("Location"),
    )
    assert await stage.effects("review") == once
    assert (once > before) == (kind is Kind.COMMAND)
    if other is not None:
        reused = await client.post(url, data=other, headers=cookie)
        assert reused.status_code == 422
        assert "request.key_reused" in reused.text
        assert await stage.effects("review") == once
