"""The identity HTTP API on the in-memory adapters: roles per endpoint, masked profile,
bilingual field-level refusals, other people's data reading as not found, signed callbacks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog.testing

from services.identity.api import SIGNATURE_HEADER, IdentityApi, create_app
from services.identity.face_provider import FaceSimulator, SimulatedOutcome, sign_callback
from services.identity.handlers import IdentityDeps, IdentityHandlers
from services.identity.password_hashing import make_hasher
from services.identity.tables import InMemoryIdentityTables
from services.runtime.auth import (
    ConfirmationMethod,
    ConfirmationProof,
    decode_confirmation,
    issue_token,
)
from services.runtime.memory import InMemoryEventStore
from services.runtime.pii import InMemoryKeyVault
from services.runtime.principal import Principal, Role

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SECRET = "s" * 32
CALLBACK_SECRET = b"c" * 32
NAME, ID_NUMBER, PLACE = "张三丰", "360426199101010071", "360100"
PERSON = {"name": NAME, "id_number": ID_NUMBER, "insured_place": PLACE}
FIRST, NEW, THIRD, WRONG = "135790", "284915", "370268", "135791"  # payment passwords, made up
JSON = {"Content-Type": "application/json"}  # as the provider sends its callbacks


def token(role: Role, subject: str = "staff-1") -> dict[str, str]:
    regions = ("360100",) if role is Role.REVIEWER else ()
    issued = issue_token(Principal(subject, role, regions), timedelta(hours=1), secret=SECRET)
    return {"Authorization": f"Bearer {issued}"}


class World:
    def __init__(self) -> None:
        store = InMemoryEventStore()
        self.simulator = FaceSimulator(lambda: NOW + timedelta(seconds=30))
        self.handlers = IdentityHandlers(
            IdentityDeps(
                store,
                InMemoryKeyVault(),
                InMemoryIdentityTables(store),
                b"L" * 32,
                make_hasher(),
                self.simulator,
            )
        )

    @asynccontextmanager
    async def open(self) -> AsyncIterator[IdentityApi]:
        async def ready() -> bool:
            return True

        yield IdentityApi(self.handlers, lambda: NOW, CALLBACK_SECRET, ready)


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SECRET, world.open)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)  # an exception reaching the server fails
        async with httpx.AsyncClient(transport=transport, base_url="http://identity") as http:
            yield http


async def register(client: httpx.AsyncClient, **fields: str) -> str:
    answer = await client.post("/persons", json=PERSON | fields, headers=token(Role.OPERATOR))
    assert answer.status_code == 201, answer.text
    pseudonym: str = answer.json()["pseudonym"]
    return pseudonym


# Every endpoint behind a token: method, path, a valid body, the roles it admits.
ENDPOINTS: list[tuple[str, str, dict[str, str] | None, frozenset[Role]]] = [
    ("POST", "/persons", PERSON, frozenset({Role.OPERATOR})),
    ("GET", "/persons/me", None, frozenset({Role.INSURED})),
    ("GET", "/persons/p_x", None, frozenset({Role.INSURED, Role.OPERATOR})),
    ("POST", "/persons/me/insured-places", {"insured_place": PLACE}, frozenset({Role.INSURED})),
    (
        "PUT",
        "/persons/me/current-insured-place",
        {"insured_place": PLACE},
        frozenset({Role.INSURED}),
    ),
    (
        "POST",
        "/persons/me/voucher-activations",
        {"channel": "wechat", "face_check_id": "f"},
        frozenset({Role.INSURED}),
    ),
    (
        "PUT",
        "/persons/me/payment-password",
        {"password": "135790", "channel": "wechat"},
        frozenset({Role.INSURED}),
    ),
    (
        "POST",
        "/persons/me/payment-password/verification",
        {"password": "135790"},
        frozenset({Role.INSURED}),
    ),
    ("POST", "/face-checks", {"purpose": "activation"}, frozenset({Role.INSURED})),
    ("GET", "/face-checks/f", None, frozenset({Role.INSURED})),
]
ROLE_CASES = [
    pytest.param(method, path, body, role, id=f"{method} {path} as {role}")
    for method, path, body, allowed in ENDPOINTS
    for role in Role
    if role not in allowed
]


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"),
    [pytest.param(*e, id=f"{e[0]} {e[1]}") for e in ENDPOINTS],
)
async def test_every_endpoint_answers_401_without_a_token(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, str] | None,
    allowed: frozenset[Role],
) -> None:
    answer = await client.request(method, path, json=body)
    assert answer.status_code == 401
    assert answer.json()["code"] == "auth.missing_token"


@pytest.mark.parametrize(("method", "path", "body", "role"), ROLE_CASES)
async def test_every_endpoint_answers_403_to_a_role_it_does_not_admit(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, str] | None, role: Role
) -> None:
    answer = await client.request(method, path, json=body, headers=token(role))
    assert answer.status_code == 403
    assert answer.json()["code"] == "auth.forbidden_role"


async def test_registered_person_sees_their_profile_masked(client: httpx.AsyncClient) -> None:
    pseudonym = await register(client)
    answer = await client.get("/persons/me", headers=token(Role.INSURED, pseudonym))
    assert answer.status_code == 200
    profile = answer.json()
    assert profile["pseudonym"] == pseudonym
    assert profile["name"] == "张**"
    assert profile["id_number"] == "360***********0071"
    assert profile["insured_places"] == [PLACE]
    assert ID_NUMBER not in answer.text
    assert NAME not in answer.text
    assert "1991" not in answer.text  # no birth date: it is what the mask hides


async def test_an_invalid_id_number_is_refused_with_its_code_in_both_languages(
    client: httpx.AsyncClient,
) -> None:
    wrong_check = ID_NUMBER[:-1] + "2"
    answer = await client.post(
        "/persons", json=PERSON | {"id_number": wrong_check}, headers=token(Role.OPERATOR)
    )
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "id_number.check_digit"
    assert body["field"] == "id_number"
    assert "校验码" in body["message"]["zh"]
    assert "check character" in body["message"]["en"]
    assert wrong_check not in answer.text


async def test_a_second_registration_of_one_id_number_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    answer = await client.post("/persons", json=PERSON, headers=token(Role.OPERATOR))
    assert answer.status_code == 409
    assert answer.json()["code"] == "person.already_registered"


async def test_another_persons_profile_reads_as_not_found(client: httpx.AsyncClient) -> None:
    one = await register(client)
    other = await register(client, id_number="11010519491231002X")
    answer = await client.get(f"/persons/{other}", headers=token(Role.INSURED, one))
    unknown = await client.get("/persons/p_nobody", headers=token(Role.INSURED, one))
    assert answer.status_code == unknown.status_code == 404
    assert answer.json() == unknown.json()
    staff = await client.get(f"/persons/{other}", headers=token(Role.OPERATOR))
    assert staff.status_code == 200


async def passed_check(
    client: httpx.AsyncClient, world: World, me: dict[str, str], purpose: str
) -> str:
    requested = await client.post("/face-checks", json={"purpose": purpose}, headers=me)
    assert requested.status_code == 202, requested.text
    assert requested.json()["status"] == "pending"
    await world.simulator.settle()
    check_id: str = requested.json()["check_id"]
    status = await client.get(f"/face-checks/{check_id}", headers=me)
    assert status.json()["status"] == "verified"
    return check_id


async def activated(client: httpx.AsyncClient, world: World) -> dict[str, str]:
    """The bearer headers of a registered person whose e-voucher is activated on WeChat."""
    me = token(Role.INSURED, await register(client))
    activate = {
        "channel": "wechat",
        "face_check_id": await passed_check(client, world, me, "activation"),
    }
    answer = await client.post("/persons/me/voucher-activations", json=activate, headers=me)
    assert answer.status_code == 204, answer.text
    return me


async def put_password(
    client: httpx.AsyncClient, me: dict[str, str], password: str, **proof: str
) -> httpx.Response:
    body = {"password": password, "channel": "wechat", **proof}
    return await client.put("/persons/me/payment-password", json=body, headers=me)


async def verify(client: httpx.AsyncClient, me: dict[str, str], password: str) -> httpx.Response:
    return await client.post(
        "/persons/me/payment-password/verification", json={"password": password}, headers=me
    )


async def test_face_check_activation_and_payment_password_through_the_api(
    client: httpx.AsyncClient, world: World
) -> None:
    me = await activated(client, world)
    trivial = await put_password(client, me, "123456")
    assert (trivial.status_code, trivial.json()["code"]) == (422, "password.sequence")
    assert trivial.json()["field"] == "password"
    assert (await put_password(client, me, FIRST)).status_code == 204
    right, wrong = await verify(client, me, FIRST), await verify(client, me, WRONG)
    assert (right.json()["matched"], wrong.json()) == (
        True,
        {"matched": False, "confirmation": None},
    )
    pseudonym = (await client.get("/persons/me", headers=me)).json()["pseudonym"]
    proof = decode_confirmation(right.json()["confirmation"], secret=SECRET, now=NOW)
    assert proof == ConfirmationProof(pseudonym, ConfirmationMethod.PAYMENT_PASSWORD)
    profile = (await client.get("/persons/me", headers=me)).json()
    assert profile["activated_channels"] == ["wechat"]
    assert profile["payment_password_set"] is True


async def test_an_access_token_alone_does_not_replace_a_set_password(
    client: httpx.AsyncClient, world: World
) -> None:
    me = await activated(client, world)
    assert (await put_password(client, me, FIRST)).status_code == 204
    for channel in ("wechat", "national_app", "alipay"):  # no channel claim opens the way
        body = {"password": NEW, "channel": channel}
        bypass = await client.put("/persons/me/payment-password", json=body, headers=me)
        assert (bypass.status_code, bypass.json()["code"]) == (403, "password.old_required")
        assert bypass.json()["field"] == "old_password"
        assert "原密码" in bypass.json()["message"]["zh"]
        assert "old one" in bypass.json()["message"]["en"]
    assert (await verify(client, me, NEW)).json()["matched"] is False
    assert (await verify(client, me, FIRST)).json()["matched"] is True


async def test_a_set_password_changes_with_the_old_one_not_with_a_wrong_one(
    client: httpx.AsyncClient, world: World
) -> None:
    me = await activated(client, world)
    await put_password(client, me, FIRST)
    wrong = await put_password(client, me, NEW, old_password=WRONG)
    assert (wrong.status_code, wrong.json()["code"]) == (403, "password.old_wrong")
    assert (await put_password(client, me, NEW, old_password=FIRST)).status_code == 204
    assert (await verify(client, me, FIRST)).json()["matched"] is False
    assert (await verify(client, me, NEW)).json()["matched"] is True


async def test_a_locked_password_is_reset_only_by_a_fresh_face_check_used_once(
    client: httpx.AsyncClient, world: World
) -> None:
    me = await activated(client, world)
    await put_password(client, me, FIRST)
    for _ in range(4):
        assert (await verify(client, me, WRONG)).json()["matched"] is False
    fifth = await put_password(client, me, NEW, old_password=WRONG)  # counts like a verification
    assert fifth.json()["code"] == "password.old_wrong"
    for refused in (
        await put_password(client, me, NEW),
        await put_password(client, me, NEW, old_password=FIRST),
        await verify(client, me, FIRST),
    ):
        assert (refused.status_code, refused.json()["code"]) == (423, "password.locked")
    activation_check = await passed_check(client, world, me, "activation")
    wrong_purpose = await put_password(client, me, NEW, face_check_id=activation_check)
    assert (wrong_purpose.status_code, wrong_purpose.json()["code"]) == (403, "face_check.purpose")
    check_id = await passed_check(client, world, me, "password_reset")
    assert (await put_password(client, me, NEW, face_check_id=check_id)).status_code == 204
    profile = (await client.get("/persons/me", headers=me)).json()
    assert profile["payment_password_locked_until"] is None
    assert (await verify(client, me, NEW)).json()["matched"] is True
    replayed = await put_password(client, me, THIRD, face_check_id=check_id)
    assert (replayed.status_code, replayed.json()["code"]) == (409, "face_check.used")
    assert (await verify(client, me, NEW)).json()["matched"] is True


async def test_a_change_with_both_proofs_is_refused_as_malformed(
    client: httpx.AsyncClient, world: World
) -> None:
    me = await activated(client, world)
    await put_password(client, me, FIRST)
    both = await put_password(client, me, NEW, old_password=FIRST, face_check_id="f")
    assert (both.status_code, both.json()["code"]) == (422, "request.invalid")
    assert (await verify(client, me, FIRST)).json()["matched"] is True


async def test_insured_places_are_added_and_switched_only_among_ones_own(
    client: httpx.AsyncClient,
) -> None:
    me = token(Role.INSURED, await register(client))
    unknown = await client.put(
        "/persons/me/current-insured-place", json={"insured_place": "110105"}, headers=me
    )
    assert (unknown.status_code, unknown.json()["code"]) == (422, "insured_place.unknown")
    added = await client.post(
        "/persons/me/insured-places", json={"insured_place": "110105"}, headers=me
    )
    switched = await client.put(
        "/persons/me/current-insured-place", json={"insured_place": "110105"}, headers=me
    )
    assert added.status_code == switched.status_code == 204
    profile = (await client.get("/persons/me", headers=me)).json()
    assert profile["insured_places"] == [PLACE, "110105"]
    assert profile["current_insured_place"] == "110105"


async def test_another_persons_face_check_reads_as_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    world.simulator.default = SimulatedOutcome(answers=False)
    owner = token(Role.INSURED, await register(client))
    other = token(Role.INSURED, await register(client, id_number="11010519491231002X"))
    requested = await client.post("/face-checks", json={"purpose": "login"}, headers=owner)
    check_id = requested.json()["check_id"]
    answer = await client.get(f"/face-checks/{check_id}", headers=other)
    assert answer.status_code == 404
    assert answer.json()["code"] == "face_check.not_requested"
    assert (await client.get(f"/face-checks/{check_id}", headers=owner)).status_code == 200


async def test_a_person_cannot_ask_for_a_check_on_someone_elses_behalf(
    client: httpx.AsyncClient,
) -> None:
    me = token(Role.INSURED, await register(client))
    answer = await client.post("/face-checks", json={"purpose": "member_binding"}, headers=me)
    assert answer.status_code == 422
    assert answer.json()["field"] == "purpose"


async def _pending_check(client: httpx.AsyncClient, world: World) -> tuple[str, dict[str, str]]:
    world.simulator.default = SimulatedOutcome(answers=False)
    me = token(Role.INSURED, await register(client))
    requested = await client.post("/face-checks", json={"purpose": "activation"}, headers=me)
    return requested.json()["check_id"], me


async def test_a_signed_provider_callback_records_the_outcome(
    client: httpx.AsyncClient, world: World
) -> None:
    check_id, me = await _pending_check(client, world)
    body = json.dumps({"check_id": check_id, "outcome": "failed", "reason": "not_live"}).encode()
    signature = sign_callback(CALLBACK_SECRET, body)
    answer = await client.post(
        "/face-provider/callback",
        content=body,
        headers={SIGNATURE_HEADER: signature, "Content-Type": "application/json"},
    )
    assert answer.status_code == 204
    status = (await client.get(f"/face-checks/{check_id}", headers=me)).json()
    assert (status["status"], status["reason"]) == ("failed", "not_live")


@pytest.mark.parametrize("signature", [None, "", "00" * 32, "not hex at all"])
async def test_a_callback_with_a_bad_signature_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, world: World, signature: str | None
) -> None:
    check_id, me = await _pending_check(client, world)
    body = json.dumps({"check_id": check_id, "outcome": "verified"}).encode()
    headers = {} if signature is None else {SIGNATURE_HEADER: signature}
    answer = await client.post("/face-provider/callback", content=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["code"] == "face_provider.signature"
    assert (await client.get(f"/face-checks/{check_id}", headers=me)).json()["status"] == "pending"


async def test_a_signed_callback_for_an_unknown_check_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    body = json.dumps({"check_id": "nope", "outcome": "verified"}).encode()
    headers = {SIGNATURE_HEADER: sign_callback(CALLBACK_SECRET, body), **JSON}
    answer = await client.post("/face-provider/callback", content=body, headers=headers)
    assert answer.status_code == 404


async def test_an_unsigned_callback_is_refused_before_its_fields_are_read(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"check_id": "x", "outcome": "maybe"}'
    answer = await client.post("/face-provider/callback", content=body, headers=JSON)
    assert answer.status_code == 401
    assert answer.json()["code"] == "face_provider.signature"


async def test_a_signed_but_malformed_callback_is_refused_field_by_field(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"check_id": "x", "outcome": "maybe"}'
    headers = {SIGNATURE_HEADER: sign_callback(CALLBACK_SECRET, body), **JSON}
    answer = await client.post("/face-provider/callback", content=body, headers=headers)
    assert answer.status_code == 422
    assert answer.json()["field"] == "outcome"


@pytest.mark.parametrize(
    "raw", [b'{"name": "x", "id_number": ', b"\xff\xfe", b"[1, 2]", b"null", b""]
)
async def test_a_garbled_body_is_a_bilingual_422_not_a_500(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    answer = await client.post(
        "/persons",
        content=raw,
        headers=token(Role.OPERATOR) | {"Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] in ("request.json_invalid", "request.invalid")
    assert body["message"]["zh"]
    assert body["message"]["en"]


async def test_a_missing_field_is_named_in_both_languages(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/persons", json={"name": NAME, "insured_place": PLACE}, headers=token(Role.OPERATOR)
    )
    assert answer.status_code == 422
    body = answer.json()
    assert (body["code"], body["field"]) == ("request.invalid", "id_number")
    assert "缺少必填字段" in body["message"]["zh"]
    assert NAME not in answer.text  # the rejected input is not echoed back


async def test_health_readiness_and_openapi_are_public(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"ready": True}
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/persons", "/persons/me", "/face-checks/{check_id}", "/face-provider/callback"} <= set(
        paths
    )


async def test_an_unexpected_failure_answers_without_trace_or_personal_data(
    client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(pseudonym: str) -> None:
        raise RuntimeError(f"boom {NAME} {ID_NUMBER}")

    monkeypatch.setattr(world.handlers, "person", broken)
    with structlog.testing.capture_logs() as logs:
        answer = await client.get("/persons/me", headers=token(Role.INSURED, "p_x"))
    assert answer.status_code == 500
    assert answer.json()["code"] == "internal"
    assert "Traceback" not in answer.text
    for text in (answer.text, repr(logs)):
        assert NAME not in text
        assert ID_NUMBER not in text


async def test_no_log_entry_holds_a_registered_or_refused_id_number(
    client: httpx.AsyncClient,
) -> None:
    wrong = ID_NUMBER[:-1] + "2"
    with structlog.testing.capture_logs() as logs:
        await register(client)
        await client.post(
            "/persons", json=PERSON | {"id_number": wrong}, headers=token(Role.OPERATOR)
        )
    assert ID_NUMBER not in repr(logs)
    assert wrong not in repr(logs)
