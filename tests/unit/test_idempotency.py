"""Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): the same key with the same request
answers as the first, with another request it is refused with 422 request.key_reused, on every
route that takes a key; and what counts as the same request."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI, Form, UploadFile

from contracts.vocabulary import Relation
from services.binding.api import BindingApi
from services.binding.api import create_app as binding_app
from services.binding.events import MemberBindRequested
from services.review.api import create_app as review_app
from services.review.console import SESSION_COOKIE
from services.runtime.auth import configure_auth, issue_token
from services.runtime.idempotency import IdempotencyKey
from services.runtime.principal import Principal, Role
from tests.unit.binding.builders import HOLDER, NOW
from tests.unit.binding.test_handlers import FATHER_ID, SON_ID, by_id
from tests.unit.binding.test_handlers import World as BindingWorld
from tests.unit.review.builders import NANCHANG
from tests.unit.review.test_api import World as ReviewWorld
from tests.unit.review.test_api import bearer

SECRET = "s" * 32


def _client(app: FastAPI, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


# ---------------------------------------------------------------------------- binding


@pytest.fixture
async def binding() -> AsyncIterator[tuple[httpx.AsyncClient, BindingWorld]]:
    world = BindingWorld()
    await world.person(HOLDER, "360121198804020117", "360102")
    await world.person("p-father", FATHER_ID)
    await world.person("p-son", SON_ID)

    @asynccontextmanager
    async def open_api() -> AsyncIterator[BindingApi]:
        async def ready() -> bool:
            return True

        # POST /bindings reads nothing through the pool (the family views do).
        yield BindingApi(world.handlers, cast(Any, None), "binding", lambda: NOW, ready)

    app = binding_app(SECRET, open_api)
    async with app.router.lifespan_context(app), _client(app, "http://binding") as client:
        yield client, world


def _holder(key: str) -> dict[str, str]:
    token = issue_token(Principal(HOLDER, Role.INSURED), timedelta(hours=1), secret=SECRET)
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": key}


async def requested(world: BindingWorld) -> list[str]:
    """The members the holder's requests name, in the order they were recorded."""
    return [e.member for e in await world.events() if isinstance(e, MemberBindRequested)]


FATHER = by_id(FATHER_ID).model_dump(mode="json", exclude_none=True)
SON = by_id(SON_ID, relation=Relation.CHILD).model_dump(mode="json", exclude_none=True)


async def test_a_key_sent_again_with_the_same_request_answers_as_the_first(
    binding: tuple[httpx.AsyncClient, BindingWorld],
) -> None:
    client, world = binding
    first = await client.post("/bindings", json=FATHER, headers=_holder("k-1"))
    # The same fields in another order, spaced otherwise: the same request.
    reordered = json.dumps(dict(reversed(FATHER.items())), indent=2)
    headers = _holder("k-1") | {"Content-Type": "application/json"}
    again = await client.post("/bindings", content=reordered, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert await requested(world) == ["p-father"]


async def test_a_key_sent_again_with_another_request_is_refused_and_binds_no_one(
    binding: tuple[httpx.AsyncClient, BindingWorld],
) -> None:
    client, world = binding
    father = await client.post("/bindings", json=FATHER, headers=_holder("k-1"))
    son = await client.post("/bindings", json=SON, headers=_holder("k-1"))
    assert father.status_code == 202
    assert son.status_code == 422
    assert (son.json()["code"], set(son.json()["message"])) == ("request.key_reused", {"zh", "en"})
    assert await requested(world) == ["p-father"]


async def test_concurrent_requests_with_one_key_and_one_body_get_the_first_answer(
    binding: tuple[httpx.AsyncClient, BindingWorld],
) -> None:
    client, world = binding
    answers = await asyncio.gather(
        *(client.post("/bindings", json=FATHER, headers=_holder("k-1")) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["request_id"] for a in answers}) == 1
    assert await requested(world) == ["p-father"]


async def test_concurrent_requests_with_one_key_and_different_bodies_admit_only_one(
    binding: tuple[httpx.AsyncClient, BindingWorld],
) -> None:
    client, world = binding
    father, son = await asyncio.gather(
        client.post("/bindings", json=FATHER, headers=_holder("k-1")),
        client.post("/bindings", json=SON, headers=_holder("k-1")),
    )
    assert sorted([father.status_code, son.status_code]) == [202, 422]
    assert len(await requested(world)) == 1


async def test_another_holder_may_use_the_same_key(
    binding: tuple[httpx.AsyncClient, BindingWorld],
) -> None:
    client, world = binding
    await world.person("p-other", "360121199001010118", "360102")
    await client.post("/bindings", json=FATHER, headers=_holder("k-1"))
    token = issue_token(Principal("p-other", Role.INSURED), timedelta(hours=1), secret=SECRET)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k-1"}
    assert (await client.post("/bindings", json=SON, headers=headers)).status_code == 202


# ---------------------------------------------------------------------------- review


@pytest.fixture
async def review() -> AsyncIterator[tuple[httpx.AsyncClient, ReviewWorld]]:
    world = ReviewWorld()
    app = review_app(SECRET, world.open)
    async with app.router.lifespan_context(app), _client(app, "http://review") as client:
        yield client, world


async def test_a_reviewer_key_is_refused_for_another_decision_on_the_case(
    review: tuple[httpx.AsyncClient, ReviewWorld],
) -> None:
    client, world = review
    case_id = await world.case()
    headers = bearer(NANCHANG) | {"Idempotency-Key": "d-1"}
    assert (await client.post(f"/cases/{case_id}/claim", headers=headers)).status_code == 200
    approve = await client.post(f"/cases/{case_id}/approve", headers=headers)
    assert (approve.status_code, approve.json()["code"]) == (422, "request.key_reused")
    reject = await client.post(
        f"/cases/{case_id}/reject", json={"reason": "other"}, headers=headers
    )
    assert (reject.status_code, reject.json()["code"]) == (422, "request.key_reused")
    detail = await client.get(f"/cases/{case_id}", headers=bearer(NANCHANG))
    assert (detail.json()["status"], detail.json()["claimed_by"]) == ("open", NANCHANG.subject)


async def test_a_reviewer_key_is_refused_for_the_same_decision_on_another_case(
    review: tuple[httpx.AsyncClient, ReviewWorld],
) -> None:
    client, world = review
    first, second = await world.case("req-1"), await world.case("req-2")
    headers = bearer(NANCHANG) | {"Idempotency-Key": "d-1"}
    assert (await client.post(f"/cases/{first}/approve", headers=headers)).status_code == 200
    other = await client.post(f"/cases/{second}/approve", headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "request.key_reused")


async def test_a_rejection_sent_again_with_another_note_is_refused(
    review: tuple[httpx.AsyncClient, ReviewWorld],
) -> None:
    client, world = review
    case_id = await world.case()
    headers = bearer(NANCHANG) | {"Idempotency-Key": "d-1"}
    body = {"reason": "other", "note": "模糊"}
    first = await client.post(f"/cases/{case_id}/reject", json=body, headers=headers)
    same = await client.post(f"/cases/{case_id}/reject", json=body, headers=headers)
    other = await client.post(
        f"/cases/{case_id}/reject", json=body | {"note": "不清晰"}, headers=headers
    )
    assert (first.status_code, same.status_code, other.status_code) == (200, 200, 422)


async def test_a_console_form_sent_again_with_other_fields_is_refused_as_a_page(
    review: tuple[httpx.AsyncClient, ReviewWorld],
) -> None:
    client, world = review
    case_id = await world.case()
    session = issue_token(NANCHANG, timedelta(hours=1), secret=SECRET)
    # The CSRF token the case page's forms carry: bound to the session.
    message = f"qinqing-console/session/{session}".encode()
    csrf = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    cookie = {"Cookie": f"{SESSION_COOKIE}={session}"}

    async def reject(note: str) -> httpx.Response:
        form = {"csrf": csrf, "key": "form-1", "reason": "other", "note": note}
        return await client.post(f"/console/cases/{case_id}/reject", data=form, headers=cookie)

    first, resubmitted, changed = await reject("模糊"), await reject("模糊"), await reject("缺页")
    assert (first.status_code, resubmitted.status_code) == (303, 303)
    assert changed.status_code == 422
    assert changed.headers["Content-Type"].startswith("text/html")
    assert "request.key_reused" in changed.text


# ---------------------------------------------------------------------------- fingerprints


@pytest.fixture
async def printer() -> AsyncIterator[httpx.AsyncClient]:
    """An app that answers with the fingerprint of what it is sent."""
    app = FastAPI()
    configure_auth(app, SECRET)

    @app.post("/json")
    async def of_json(key: IdempotencyKey) -> str:
        assert key is not None
        return key.fingerprint.hex()

    @app.post("/form")
    async def of_form(
        key: IdempotencyKey, file: UploadFile, note: str = Form(max_length=10)
    ) -> str:
        assert key is not None
        assert await file.read()  # the route still reads the whole file
        return key.fingerprint.hex()

    async with _client(app, "http://t") as client:
        yield client


KEY = {"Idempotency-Key": "k"}


async def test_a_json_body_is_the_same_request_whatever_its_key_order_and_spacing(
    printer: httpx.AsyncClient,
) -> None:
    headers = KEY | {"Content-Type": "application/json"}
    one = await printer.post("/json", content=b'{"a": 1, "b": [1, 2]}', headers=headers)
    two = await printer.post("/json", content=b'{"b":[1,2],"a":1}', headers=headers)
    other = await printer.post("/json", content=b'{"b":[2,1],"a":1}', headers=headers)
    query = await printer.post("/json?x=1", content=b'{"b":[1,2],"a":1}', headers=headers)
    assert one.json() == two.json()
    assert len({one.json(), other.json(), query.json()}) == 3


async def test_a_form_is_the_same_request_when_its_fields_and_files_are(
    printer: httpx.AsyncClient,
) -> None:
    async def sent(note: str, content: bytes) -> str:
        files = {"file": ("page.png", content, "image/png")}
        answer = await printer.post("/form", data={"note": note}, files=files, headers=KEY)
        assert answer.status_code == 200, answer.text
        return str(answer.json())

    first = await sent("a", b"\x89PNG one")
    assert await sent("a", b"\x89PNG one") == first
    assert await sent("b", b"\x89PNG one") != first
    assert await sent("a", b"\x89PNG two") != first
