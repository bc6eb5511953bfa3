"""schemathesis against each service's own OpenAPI document, on the real stack: identity,
binding and review served over loopback HTTP with PostgreSQL and Kafka, called with a token of
a role each route admits. Valid and invalid requests alike must answer without a server error,
with a status the route documents, a body its schema describes, and invalid ones refused."""

from __future__ import annotations

import asyncio
import json
import queue
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from services.demo.people import Person
from services.demo.stack import SERVICES, Stack, drop_stack, running_stack
from services.runtime.auth import issue_token
from services.runtime.principal import Principal, Role
from services.runtime.settings import Settings
from tests.integration.test_binding_e2e import _schemas
from tests.unit.review.builders import NANCHANG
from tests.unit.test_authorization import ACCESS

SECRET = Settings().jwt_secret.get_secret_value()
# Per operation and generation mode (valid, invalid): enough to reach each refusal, and the
# run (three services, ~35 operations) stays within about two minutes on two cores.
EXAMPLES = 20


def no_server_error(_: Any, response: Any, case: Any) -> None:
    """A 503 (the database did not answer) is the one server error a route may answer, and
    `status_code_conformance` holds it to its documents; any other 5xx is a failure."""
    assert response.status_code < 500 or response.status_code == 503, (
        f"{case.operation.label} answered {response.status_code}"
    )


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CALLS: Counter[tuple[str, str, int]] = Counter()  # (service, operation, status) -> cases


@pytest.fixture(scope="module")
def stack(database_url: str, kafka_bootstrap: str) -> Iterator[Stack]:
    """The three services, served from a thread with an event loop of its own: schemathesis
    calls them synchronously from the test's thread."""
    tag = uuid4().hex[:10]
    schemas = _schemas(tag)
    started: queue.Queue[Stack | BaseException] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        try:
            async with running_stack(
                database_url, kafka_bootstrap, namespace=f"fuzz{tag}", schemas=schemas
            ) as running:
                started.put(running)
                await asyncio.to_thread(stop.wait)
        except BaseException as exc:
            started.put(exc)
            raise
        finally:
            await drop_stack(database_url, schemas)

    # A daemon: should the stack hang while starting, the test run still ends.
    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    running = started.get(timeout=180)
    if isinstance(running, BaseException):
        raise running
    try:
        yield running
    finally:
        stop.set()
        thread.join(timeout=60)
        ARTIFACTS.mkdir(exist_ok=True)
        counts = [{"call": list(k), "cases": n} for k, n in sorted(CALLS.items())]
        (ARTIFACTS / "schemathesis.json").write_text(json.dumps(counts, indent=1))


def _bearer(who: Principal) -> str:
    return f"Bearer {issue_token(who, timedelta(hours=1), secret=SECRET)}"


@pytest.fixture(scope="module")
def tokens(stack: Stack) -> dict[Role, str]:
    """A token per role; the insured person is registered, so their own routes find them."""
    operator = Principal("ops-fuzz", Role.OPERATOR)
    holder = Person("holder", "周慧敏", date(1988, 4, 2), True)
    body = {
        "name": holder.name,
        "id_number": holder.id_number(random.Random()),
        "insured_place": "360102",
    }
    answer = httpx.post(
        f"{stack.urls['identity']}/persons",
        json=body,
        headers={"Authorization": _bearer(operator)},
    )
    assert answer.status_code == 201, answer.text
    insured = Principal(answer.json()["pseudonym"], Role.INSURED)
    others = (operator, Principal("audit-fuzz", Role.AUDITOR), NANCHANG, insured)
    return {who.role: _bearer(who) for who in others}


def _fuzz(operation: Any, mode: GenerationMode, call: Callable[[Any], None]) -> list[str]:
    """The failures of `EXAMPLES` generated cases of one operation (none shrunk: the first
    failing case is reported as found, so a failing run stays short)."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        call(case)

    try:
        check()
    except (Failure, FailureGroup) as exc:  # reported with its operation; the run goes on
        return [f"{operation.label} ({mode.value}): {exc}"]
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # An operation that takes nothing (GET /healthz) has nothing to send invalid.
    return []


# schemathesis's own strategies draw from `random`, which Hypothesis warns about on every case.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.parametrize("service", SERVICES)
def test_each_route_answers_as_its_document_says(
    stack: Stack, tokens: dict[Role, str], service: str
) -> None:
    url = stack.urls[service]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    # The token is the test's, per route (the APIs take no other credential); a query
    # parameter no route declares is ignored, as HTTP APIs do, so none is sent to be refused.
    schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)

    def call(case: Any) -> None:
        method, path = case.operation.method.upper(), case.operation.path
        role = next(iter(sorted(ACCESS[(service, method, path)].roles)), None)
        headers = {"Authorization": tokens[role]} if role else {}
        response = case.call(base_url=url, headers=headers, timeout=30)
        CALLS[(service, f"{method} {path}", response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    failures = [
        failure
        for result in schema.get_all_operations()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for failure in _fuzz(result.ok(), mode, call)
    ]
    assert not failures, "\n\n".join(failures)


def test_an_id_holding_nul_is_refused_and_never_reaches_postgresql(
    stack: Stack, tokens: dict[Role, str]
) -> None:
    """What schemathesis found: PostgreSQL refuses NUL in text, and the query's failure
    answered a 500."""
    insured = {"Authorization": tokens[Role.INSURED]}
    answer = httpx.post(
        f"{stack.urls['identity']}/persons/me/voucher-activations",
        json={"channel": "wechat", "face_check_id": "\u0000"},
        headers=insured,
    )
    assert (answer.status_code, answer.json()["field"]) == (422, "face_check_id")
    answer = httpx.get(f"{stack.urls['binding']}/bindings/%00", headers=insured)
    assert (answer.status_code, answer.json()["field"]) == (422, "request_id")
