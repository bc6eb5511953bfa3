"""End to end on the real PostgreSQL and Kafka: identity, binding and review as running
services that talk only through Kafka, driven through their HTTP APIs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from contracts.vocabulary import Relation
from services.binding.domain import holder_stream
from services.binding.projections import BindingViews, family_view
from services.demo.people import Person
from services.demo.scenario import Scenario
from services.demo.stack import SERVICES, Stack, drop_stack, running_stack
from services.runtime.auth import issue_token
from services.runtime.principal import Principal, Role
from services.runtime.projection import ProjectionRunner
from services.runtime.settings import Settings

SECRET = Settings().jwt_secret.get_secret_value()
ADULT = date(1980, 4, 1)
HOLDERS, ATTACKERS, RESET = "135790", "246801", "370268"  # payment passwords, made up
# Bound at once: a proxy member without an ID card needs the signed commitment only.
PROXY_CHILD = {
    "kind": "proxy",
    "method": "proxy_without_id",
    "relation": "grandchild",
    "member_name": "王小丫",
    "member_birth_date": date(2020, 2, 2).isoformat(),
    "member_insured_place": "360102",
    "commitment_accepted": True,
}


def _schemas(tag: str) -> dict[str, str]:
    return {s: f"{s}_{tag}" for s in SERVICES}


@pytest.fixture(scope="module")
async def stack(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Stack]:
    tag = uuid4().hex[:10]
    schemas = _schemas(tag)
    try:
        async with running_stack(
            database_url,
            kafka_bootstrap,
            namespace=f"e2e{tag}",
            schemas=schemas,
            face_latency_s=0.2,
        ) as running:
            yield running
    finally:
        await drop_stack(database_url, schemas)


@pytest.fixture
async def story(stack: Stack) -> AsyncIterator[Scenario]:
    lines: list[str] = []
    scenario = Scenario(stack, SECRET, lines.append)
    try:
        yield scenario
    finally:
        await scenario.close()


async def test_the_demo_story_reaches_every_outcome_and_the_rebuilt_view_matches(
    story: Scenario, stack: Stack, db_pool: asyncpg.Pool
) -> None:
    assert await story.run(), story.failures
    holder, schema = story.pseudonyms["holder"], stack.schemas["binding"]
    live = await family_view(db_pool, schema, holder)
    assert Counter(m.status for m in live) == {
        "bound": 2,
        "revoked": 1,
        "rejected": 1,
        "awaiting_materials": 2,
    }
    replayed = await ProjectionRunner(db_pool, schema, BindingViews(schema)).rebuild()
    assert replayed > 0
    assert await family_view(db_pool, schema, holder) == live


async def test_thirty_concurrent_requests_of_one_holder_admit_exactly_five(
    story: Scenario,
) -> None:
    await story.register(story.holder)
    members = [
        Person(f"m{n}", f"成员{'甲乙丙丁戊己庚辛壬癸'[n % 10]}", ADULT, n % 2 == 0)
        for n in range(30)
    ]
    await asyncio.gather(*(story.register(m) for m in members))
    forms = [story.form(m.role, Relation.OTHER_RELATIVE) for m in members]
    answers = await asyncio.gather(*(story.bind(f) for f in forms))
    codes = Counter((a["status_code"], a.get("code")) for a in answers)
    assert codes == {(202, None): 5, (409, "binding.family_full"): 25}
    family = await _eventually(
        story, story.url("binding", "/family"), story.me, lambda f: len(f) == 5
    )
    assert len(family) == 5


async def test_two_holders_binding_the_same_member_at_once_are_both_bound(
    story: Scenario,
) -> None:
    holders = [Person(f"h{n}", "周慧敏", ADULT, True) for n in range(2)]
    member = Person("neighbour", "赵大爷", date(1950, 1, 2), False)
    for person in (*holders, member):
        await story.register(person)
    form = story.form("neighbour", Relation.NON_RELATIVE, kind="proxy", method="proxy_with_id")
    answers = await asyncio.gather(*(story.bind(form, holder=h.role) for h in holders))
    assert [a["status_code"] for a in answers] == [202, 202]
    assert all(a["waiting_for"] == ["face"] for a in answers)
    for holder, answer in zip(holders, answers, strict=True):
        story.pseudonyms["holder"] = story.pseudonyms[holder.role]  # follow as that holder
        await story.follow(answer["request_id"], "bound")
    assert not story.failures
    expected = sorted(story.pseudonyms[h.role] for h in holders)
    holders_of = await _eventually(
        story,
        story.url("binding", f"/members/{story.pseudonyms['neighbour']}/holders"),
        story.as_insured("neighbour"),
        lambda found: sorted(h["holder"] for h in found) == expected,
    )
    assert sorted(h["holder"] for h in holders_of) == expected


async def _eventually(
    story: Scenario, url: str, headers: dict[str, str], done: Callable[[Any], bool]
) -> Any:
    """GET `url` until `done` holds of its JSON (a projection follows the log within moments;
    the limit only stops a hang), and return the last answer."""
    for _ in range(200):
        found = (await story.http.get(url, headers=headers)).json()
        if done(found):
            break
        await asyncio.sleep(0.05)
    return found


async def _passed_face_check(story: Scenario, role: str, purpose: str) -> Any:
    """The view of a face check `role` asked for and the stack's simulator passed."""
    identity, me = story.stack.urls["identity"], story.as_insured(role)
    check = await story.http.post(f"{identity}/face-checks", json={"purpose": purpose}, headers=me)
    url = f"{identity}/face-checks/{check.json()['check_id']}"
    answer = await _eventually(story, url, me, lambda c: c["status"] != "pending")
    assert answer["status"] == "verified"
    return answer


# ---------------------------------------------------------------------------- a killed service


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_binding(
    database_url: str, kafka: str, namespace: str, schema: str, port: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "QINQING_TOPIC_NAMESPACE": namespace,
        "QINQING_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "services.cli",
        "binding",
        "serve",
        "--port",
        str(port),
        "--schema",
        schema,
    ]
    quiet = subprocess.DEVNULL
    return subprocess.Popen(command, env=env, stdout=quiet, stderr=quiet)  # noqa: S603 - our CLI


async def _ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the binding service exited while starting"
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the binding service did not become ready")


async def test_a_binding_service_killed_mid_flow_loses_no_outcome_and_applies_none_twice(
    database_url: str, kafka_bootstrap: str, db_pool: asyncpg.Pool
) -> None:
    tag = uuid4().hex[:10]
    schemas, namespace = _schemas(tag), f"e2e{tag}"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        async with running_stack(
            database_url,
            kafka_bootstrap,
            namespace=namespace,
            schemas=schemas,
            face_latency_s=2.0,
            only=("identity", "review"),
        ) as partial:
            binding = _start_binding(
                database_url, kafka_bootstrap, namespace, schemas["binding"], port
            )
            try:
                await _ready(url, binding)
                stack = replace(partial, urls={**partial.urls, "binding": url})
                story = Scenario(stack, SECRET, lambda _: None)
                await story.register(story.holder)
                await story.register(story.cast["father"])
                answer = await story.bind(story.form("father", Relation.PARENT))
                request_id = answer["request_id"]
                await story.provide_materials(request_id, "father")
                assert await story.case_in_queue(request_id) is not None  # relayed to review
                binding.send_signal(signal.SIGKILL)  # mid-flow: the face check is answering
                binding.wait(timeout=10)
                await story.approve(request_id)  # review decides while binding is down
                await asyncio.sleep(2.5)  # and the face check is verified meanwhile
                binding = _start_binding(
                    database_url, kafka_bootstrap, namespace, schemas["binding"], port
                )
                await _ready(url, binding)
                view = await story.follow(request_id, "bound")
                await story.close()
            finally:
                binding.send_signal(signal.SIGTERM)
                binding.wait(timeout=20)
        assert view["status"] == "bound", story.failures
        kinds = Counter(
            r["event_type"]
            for r in await db_pool.fetch(f'SELECT event_type FROM "{schemas["binding"]}".events')
        )
        assert kinds["MemberBound"] == kinds["BindingMaterialsApproved"] == 1
        assert kinds["BindingFaceVerified"] == 1
    finally:
        await drop_stack(database_url, schemas)


# ---------------------------------------------------------------------------- refusals


async def test_bad_input_is_refused_with_a_field_level_reason_and_no_500(
    story: Scenario,
) -> None:
    await story.register(story.holder)
    await story.register(story.cast["father"])
    missing = await story.bind({**story.form("father", Relation.PARENT), "member_id_number": None})
    assert (missing["status_code"], missing["code"], missing["field"]) == (
        422,
        "binding.missing_field",
        "member_id_number",
    )
    wrong = await story.bind(
        {**story.form("father", Relation.PARENT), "member_id_number": "360121"}
    )
    assert (wrong["status_code"], wrong["field"]) == (422, "member_id_number")
    assert wrong["code"].startswith("id_number.")
    relation = await story.bind({**story.form("father", Relation.PARENT), "relation": "cousin"})
    assert (relation["status_code"], relation["field"]) == (422, "relation")
    bad_kind = await story.bind(story.form("father", Relation.NON_RELATIVE))
    assert (bad_kind["status_code"], bad_kind["code"]) == (422, "binding.relation_not_allowed")


@pytest.mark.parametrize("typed", ["*王", "王\x00明", "王😀", "王"])
async def test_a_name_that_is_not_a_person_name_is_refused_on_its_field_and_holds_no_slot(
    story: Scenario, stack: Stack, db_pool: asyncpg.Pool, typed: str
) -> None:
    await story.register(story.holder)
    await story.register(story.cast["father"])
    newborn = {
        "kind": "family_account",
        "method": "birth_certificate",
        "relation": "child",
        "member_name": "王小宝",
        "member_birth_date": date.today().isoformat(),
        "mother_name": story.holder.name,
        "mother_id_number": story.id_numbers["holder"],
        "birth_certificate_number": "Q360121000123",
    }
    for form, field in (
        (story.form("father", Relation.PARENT), "member_name"),
        (newborn, "member_name"),
        (newborn, "mother_name"),
    ):
        answer = await story.bind({**form, field: typed})
        assert (answer["status_code"], answer["field"]) == (422, field)
        assert answer["errors"][0]["type"] == "name.invalid"
    holder, schema = story.pseudonyms["holder"], stack.schemas["binding"]
    rows = f'SELECT count(*) FROM "{schema}".bind_requests WHERE holder = $1'
    assert await db_pool.fetchval(rows, holder) == 0
    events = f'SELECT count(*) FROM "{schema}".events WHERE stream_id = $1'
    assert await db_pool.fetchval(events, holder_stream(holder)) == 0
    registration = {"name": typed, "id_number": "360121195001020013", "insured_place": "360102"}
    operator = issue_token(Principal("operator", Role.OPERATOR), timedelta(hours=1), secret=SECRET)
    refused = await story.http.post(
        story.url("identity", "/persons"),
        json=registration,
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert (refused.status_code, refused.json()["field"]) == (422, "name")
    assert refused.json()["errors"][0]["type"] == "name.invalid"


async def test_mutual_aid_needs_the_personal_account_identity_registered(
    story: Scenario,
) -> None:
    employee = Person("employee", "钱进", ADULT, False)
    await story.register(story.holder)  # no personal account
    await story.register(employee, personal_account=True)
    await story.register(story.cast["husband"])
    spouse = story.form("husband", Relation.SPOUSE, kind="mutual_aid")
    refused = await story.bind(spouse)
    assert (refused["status_code"], refused["code"]) == (422, "binding.personal_account_required")
    accepted = await story.bind(spouse, holder="employee")
    assert (accepted["status_code"], accepted["kind"]) == (202, "mutual_aid")


async def test_uploads_are_checked_by_their_bytes_and_size(story: Scenario) -> None:
    await story.register(story.holder)
    url = story.url("binding", "/materials")
    text = await story.http.post(
        url, files={"file": ("page.png", b"not an image", "image/png")}, headers=story.me
    )
    assert (text.status_code, text.json()["code"]) == (422, "material.unsupported_type")
    huge = b"%PDF-" + bytes(10 * 1024 * 1024)
    too_big = await story.http.post(
        url, files={"file": ("page.pdf", huge, "application/pdf")}, headers=story.me
    )
    assert (too_big.status_code, too_big.json()["code"]) == (422, "material.too_large")
    unknown = await story.http.post(
        story.url("binding", f"/bindings/{uuid4()}/materials"),
        json={"holder_household": "a" * 64, "member_household": "b" * 64},
        headers=story.me,
    )
    assert unknown.status_code == 404


async def test_another_holders_request_reads_as_unknown_and_cannot_be_revoked_without_proof(
    story: Scenario,
) -> None:
    stranger = Person("stranger", "孙丽", ADULT, True)
    for person in (story.holder, story.cast["son"], stranger):
        await story.register(person)
    answer = await story.bind(story.form("son", Relation.CHILD))
    request_id = answer["request_id"]
    own = await story.http.get(story.url("binding", f"/bindings/{request_id}"), headers=story.me)
    theirs = await story.http.get(
        story.url("binding", f"/bindings/{request_id}"), headers=story.as_insured("stranger")
    )
    letter = await story.http.get(
        story.url("binding", f"/bindings/{request_id}/commitment-letter"),
        headers=story.as_insured("stranger"),
    )
    assert (own.status_code, theirs.status_code, letter.status_code) == (200, 404, 404)
    forged = await story.http.post(
        story.url("binding", f"/family/members/{story.pseudonyms['son']}/revocation"),
        json={"kind": "family_account", "confirmation": "not-a-proof"},
        headers=story.me,
    )
    assert (forged.status_code, forged.json()["field"]) == (403, "confirmation")


async def test_a_member_is_unbound_with_the_holders_face_check_and_not_with_anothers(
    story: Scenario,
) -> None:
    stranger = Person("stranger", "孙丽", ADULT, True)
    for person in (story.holder, stranger):
        await story.register(person)
    bound = await story.bind(PROXY_CHILD)
    assert (bound["status_code"], bound["status"]) == (202, "bound")  # commitment only
    member = bound["member"]

    async def face_proof(role: str) -> str:
        proof: str = (await _passed_face_check(story, role, "unbinding"))["confirmation"]
        return proof

    url = story.url("binding", f"/family/members/{member}/revocation")
    theirs = {"kind": "proxy", "confirmation": await face_proof("stranger")}
    refused = await story.http.post(url, json=theirs, headers=story.me)
    assert (refused.status_code, refused.json()["code"]) == (
        403,
        "binding.revocation_not_confirmed",
    )
    mine = {"kind": "proxy", "confirmation": await face_proof("holder")}
    revoked = await story.http.post(url, json=mine, headers=story.me)
    assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked")
    again = await story.http.post(url, json=mine, headers=story.me)
    assert (again.status_code, again.json()["status"]) == (200, "revoked")  # idempotent


async def test_the_password_step_up_of_an_unbinding_is_not_bypassed_with_an_access_token(
    story: Scenario,
) -> None:
    """The outside tester's path: with only the holder's access token, set a new password and
    unbind with it. Refused; a set password changes by the old one or a face-checked reset."""
    await story.register(story.holder)
    bound = await story.bind(PROXY_CHILD)
    assert (bound["status_code"], bound["status"]) == (202, "bound")
    identity = story.stack.urls["identity"]
    activation = await _passed_face_check(story, "holder", "activation")
    activate = {"channel": "national_app", "face_check_id": activation["check_id"]}
    activated = await story.http.post(
        f"{identity}/persons/me/voucher-activations", json=activate, headers=story.me
    )
    assert activated.status_code == 204, activated.text

    async def put(password: str, **proof: str) -> httpx.Response:
        body = {"password": password, "channel": "national_app", **proof}
        url = f"{identity}/persons/me/payment-password"
        return await story.http.put(url, json=body, headers=story.me)

    async def verify(password: str) -> Any:
        url = f"{identity}/persons/me/payment-password/verification"
        return (await story.http.post(url, json={"password": password}, headers=story.me)).json()

    assert (await put(HOLDERS)).status_code == 204  # the first one: the token suffices
    bypass = await put(ATTACKERS)
    assert (bypass.status_code, bypass.json()["code"]) == (403, "password.old_required")
    assert (await verify(ATTACKERS)) == {"matched": False, "confirmation": None}
    for _ in range(4):
        assert (await put(ATTACKERS, old_password=ATTACKERS)).json()["code"] == "password.old_wrong"
    # The wrong verification and the 4 wrong old passwords make 5: locked, the right one too.
    locked = await put(ATTACKERS, old_password=HOLDERS)
    assert (locked.status_code, locked.json()["code"]) == (423, "password.locked")

    reset_check = await _passed_face_check(story, "holder", "password_reset")
    assert (await put(RESET, face_check_id=reset_check["check_id"])).status_code == 204
    replayed = await put(ATTACKERS, face_check_id=reset_check["check_id"])
    assert (replayed.status_code, replayed.json()["code"]) == (409, "face_check.used")
    verified = await verify(RESET)
    assert verified["matched"] is True
    url = story.url("binding", f"/family/members/{bound['member']}/revocation")
    proof = {"kind": "proxy", "confirmation": verified["confirmation"]}
    revoked = await story.http.post(url, json=proof, headers=story.me)
    assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked")
