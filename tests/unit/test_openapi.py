"""Each service's OpenAPI document: valid, every `$ref` resolving inside it, and every route
listing each refusal it can answer, all with the one error answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.unit.apps import documents, routes

DOCUMENTS = documents()

# The refusals a route answers beyond what its shape implies (see `implied`): 404 for what
# is not found or not the caller's, 409 for conflicts with the state (and `request.busy` for
# a command that kept losing its race), 423 for a locked password.
DOMAIN_REFUSALS: dict[tuple[str, str, str], set[int]] = {
    ("identity", "POST", "/persons"): {409},
    ("identity", "GET", "/persons/me"): {404},
    ("identity", "GET", "/persons/{pseudonym}"): {404},
    ("identity", "POST", "/persons/me/insured-places"): {404, 409},
    ("identity", "PUT", "/persons/me/current-insured-place"): {404, 409},
    ("identity", "POST", "/persons/me/voucher-activations"): {404, 409},
    ("identity", "PUT", "/persons/me/payment-password"): {404, 409, 423},
    ("identity", "POST", "/persons/me/payment-password/verification"): {404, 409, 423},
    ("identity", "POST", "/face-checks"): {404, 409},
    ("identity", "GET", "/face-checks/{check_id}"): {404},
    # Signed by the provider, not a bearer token: 401 for a bad signature.
    ("identity", "POST", "/face-provider/callback"): {401, 404, 409},
    ("binding", "POST", "/bindings"): {409},
    ("binding", "GET", "/bindings/{request_id}"): {404},
    ("binding", "POST", "/materials"): set(),
    ("binding", "GET", "/bindings/{request_id}/commitment-letter"): {404, 409},
    ("binding", "POST", "/bindings/{request_id}/commitment-letter/signature"): {404, 409},
    ("binding", "POST", "/bindings/{request_id}/materials"): {404, 409},
    ("binding", "GET", "/family"): set(),
    ("binding", "GET", "/holders/{holder}/family"): set(),
    ("binding", "GET", "/members/{member}/holders"): set(),
    ("binding", "POST", "/family/members/{member}/revocation"): {404, 409},
    ("review", "GET", "/cases"): set(),
    ("review", "POST", "/cases/search"): set(),
    ("review", "GET", "/cases/{case_id}"): {404},
    ("review", "POST", "/cases/{case_id}/claim"): {404, 409},
    ("review", "POST", "/cases/{case_id}/approve"): {404, 409},
    ("review", "POST", "/cases/{case_id}/reject"): {404, 409},
    ("review", "GET", "/cases/{case_id}/materials/{sha256}"): {404},
    ("review", "GET", "/stats"): set(),
    ("review", "GET", "/policies"): set(),
    ("review", "PUT", "/policies/{region}/{case_type}"): {409},
}
# Served by every app alike (services.runtime.http.service_app), outside the services' tables.
OPS = {"/healthz", "/readyz"}


def implied(operation: dict[str, Any]) -> set[int]:
    """What an operation's shape implies: 401/403 where it takes a bearer token, 400 and 413
    where it takes a body, 422 where anything the client sends is validated, and 503
    everywhere (every service route uses the database)."""
    statuses = {503}
    if "security" in operation:
        statuses |= {401, 403}
    if "requestBody" in operation:
        statuses |= {400, 413, 422}
    if operation.get("parameters"):  # FastAPI validates even a path parameter of any text
        statuses.add(422)
    return statuses


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    """A local JSON pointer (RFC 6901) from the document's root, as OpenAPI tools read it."""
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = document
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        assert key in (node if isinstance(node, dict) else {}), f"{ref} does not resolve"
        node = node[key]
    return node


@pytest.mark.parametrize("service", sorted(DOCUMENTS))
def test_the_document_is_valid_openapi_and_every_ref_resolves_in_it(service: str) -> None:
    document = DOCUMENTS[service]
    validate(document)
    refs = set(_refs(document))
    assert refs
    for ref in refs:
        _resolve(document, ref)


def test_every_route_of_every_service_has_its_refusals_written_down() -> None:
    assert {r for r in routes() if r[2] not in OPS} == set(DOMAIN_REFUSALS)


@pytest.mark.parametrize("key", sorted(DOMAIN_REFUSALS), ids="-".join)
def test_each_route_documents_exactly_the_refusals_it_can_answer(
    key: tuple[str, str, str],
) -> None:
    service, method, path = key
    operation = DOCUMENTS[service]["paths"][path][method.lower()]
    documented = {int(s) for s in operation["responses"] if not s.startswith("2")}
    assert documented == implied(operation) | DOMAIN_REFUSALS[key]


@pytest.mark.parametrize("service", sorted(DOCUMENTS))
def test_every_refusal_is_documented_with_the_one_error_answer(service: str) -> None:
    document = DOCUMENTS[service]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorAnswer"}, (method, path)
    answer = document["components"]["schemas"]["ErrorAnswer"]
    assert set(answer["required"]) == {"code", "message"}
    assert {"code", "field", "message", "errors"} <= set(answer["properties"])


def test_a_retry_after_header_comes_with_every_503_and_a_challenge_with_every_401() -> None:
    for document in DOCUMENTS.values():
        for operations in document["paths"].values():
            for operation in operations.values():
                responses = operation["responses"]
                if "503" in responses:
                    assert "Retry-After" in responses["503"]["headers"]
                if "401" in responses and "security" in operation:
                    assert "WWW-Authenticate" in responses["401"]["headers"]
