"""Requests are read strictly where a lax reading would be wrong: a boolean is true or false,
never "yes" or 1; a date or an instant is ISO 8601 text, never a number taken for seconds since
1970; `as_of` is an instant with its offset or a log position; an id is one the services hand
out. Each refusal is a field-level 422 in both languages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.runtime.auth import issue_token
from services.runtime.principal import Principal, Role
from tests.unit.apps import SECRET, Served, served
from tests.unit.review.builders import NANCHANG

INSURED = Principal("p_holder", Role.INSURED)
AUDITOR = Principal("audit-1", Role.AUDITOR)
OPERATOR = Principal("ops-1", Role.OPERATOR)
PERSON = {"name": "张三丰", "id_number": "360426199101010071", "insured_place": "360100"}
NEWBORN = {
    "kind": "family_account",
    "method": "birth_certificate",
    "relation": "child",
    "member_name": "张小宝",
    "member_birth_date": "2026-10-01",
    "mother_name": "李梅",
    "mother_id_number": "360426199101010071",
    "birth_certificate_number": "Q360121000123",
}


def bearer(who: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(who, timedelta(hours=1), secret=SECRET)}"}


@pytest.fixture
async def stack() -> AsyncIterator[Served]:
    async with served() as running:
        yield running


def refused(answer: httpx.Response, field: str) -> dict[str, Any]:
    assert answer.status_code == 422, answer.text
    body: dict[str, Any] = answer.json()
    assert body["field"] == field
    assert body["message"]["zh"]
    assert body["message"]["en"]
    return body


@pytest.mark.parametrize("as_of", ["12", "1764633600", "20261125", "2026-11-25T10:00:00", "soon"])
@pytest.mark.parametrize("path", ["/family", "/holders/p_holder/family"])
async def test_as_of_that_is_a_number_or_an_instant_without_offset_is_refused(
    stack: Served, path: str, as_of: str
) -> None:
    who = INSURED if path == "/family" else AUDITOR
    client = stack.clients["binding"]
    answer = await client.get(path, params={"as_of": as_of}, headers=bearer(who))
    assert refused(answer, "as_of")["code"] == "request.as_of"


@pytest.mark.parametrize("as_of", ["2026-11-25T10:00:00+08:00", "2026-11-25T02:00:00Z", "812:3"])
async def test_as_of_is_an_instant_with_its_offset_or_a_position(stack: Served, as_of: str) -> None:
    client = stack.clients["binding"]
    answer = await client.get("/family", params={"as_of": as_of}, headers=bearer(INSURED))
    assert answer.status_code == 200, answer.text
    assert answer.json() == []


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, "on"])
async def test_personal_account_is_true_or_false_only(stack: Served, value: object) -> None:
    client = stack.clients["identity"]
    body = PERSON | {"personal_account": value}
    answer = await client.post("/persons", json=body, headers=bearer(OPERATOR))
    refused(answer, "personal_account")


@pytest.mark.parametrize("value", [0, 86400, "1735689600", 1735689600.0, "20261001"])
async def test_a_birth_date_given_as_a_number_is_refused(stack: Served, value: object) -> None:
    client = stack.clients["binding"]
    form = NEWBORN | {"member_birth_date": value}
    answer = await client.post("/bindings", json=form, headers=bearer(INSURED))
    assert refused(answer, "member_birth_date")["errors"][0]["type"] == "iso_8601"


@pytest.mark.parametrize("value", ["true", "yes", 1])
async def test_the_commitment_is_accepted_with_true_only(stack: Served, value: object) -> None:
    client = stack.clients["binding"]
    form = NEWBORN | {"commitment_accepted": value}
    answer = await client.post("/bindings", json=form, headers=bearer(INSURED))
    refused(answer, "commitment_accepted")


@pytest.mark.parametrize("value", [True, "20", 20.0])
async def test_a_search_limit_is_a_json_integer(stack: Served, value: object) -> None:
    client = stack.clients["review"]
    body = {"id_number": "360426199101010071", "limit": value}
    answer = await client.post("/cases/search", json=body, headers=bearer(NANCHANG))
    refused(answer, "limit")


@pytest.mark.parametrize("check_id", ["\u0000", "a b", "../persons", "x" * 65])
async def test_an_id_no_service_hands_out_is_refused_before_it_is_looked_up(
    stack: Served, check_id: str
) -> None:
    client = stack.clients["identity"]
    body = {"channel": "wechat", "face_check_id": check_id}
    answer = await client.post(
        "/persons/me/voucher-activations", json=body, headers=bearer(INSURED)
    )
    refused(answer, "face_check_id")


@pytest.mark.parametrize(
    ("service", "path", "field"),
    [
        ("identity", "/face-checks/%00", "check_id"),
        ("binding", "/bindings/a%20b", "request_id"),
        ("review", "/cases/%00", "case_id"),
    ],
)
async def test_an_id_in_a_path_is_one_the_services_hand_out(
    stack: Served, service: str, path: str, field: str
) -> None:
    who = NANCHANG if service == "review" else INSURED
    answer = await stack.clients[service].get(path, headers=bearer(who))
    refused(answer, field)
