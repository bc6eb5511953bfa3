"""Who may call what: every documented route of every service, called by every kind of caller
— no token, an expired one, one for another audience, each role, a reviewer of the case's
region and one of another — answers as the access table below says, with a status its OpenAPI
document lists. The routes come from the apps themselves, so a new route without an entry in
the table fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.runtime.auth import issue_token
from services.runtime.principal import Principal, Role
from tests.unit.apps import SECRET, Served, documents, routes, served
from tests.unit.review.builders import BEIJING, NANCHANG


@dataclass(frozen=True)
class Access:
    roles: frozenset[Role] = frozenset()  # who passes with a valid token
    public: bool = False  # anyone, with or without a token
    signed: bool = False  # the face provider's signature, never a token
    case_region: bool = False  # a reviewer elsewhere finds the case not found (404)


def may(*roles: Role, case_region: bool = False) -> Access:
    return Access(frozenset(roles), case_region=case_region)


PUBLIC = Access(public=True)
INSURED, OPERATOR, AUDITOR = Role.INSURED, Role.OPERATOR, Role.AUDITOR
REVIEWER_OF_CASE = may(Role.REVIEWER, case_region=True)
OPS = ("/healthz", "/readyz")

ACCESS: dict[tuple[str, str, str], Access] = {
    **{(s, "GET", p): PUBLIC for s in ("identity", "binding", "review") for p in OPS},
    ("identity", "POST", "/persons"): may(OPERATOR),
    ("identity", "GET", "/persons/me"): may(INSURED),
    ("identity", "GET", "/persons/{pseudonym}"): may(INSURED, OPERATOR),
    ("identity", "POST", "/persons/me/insured-places"): may(INSURED),
    ("identity", "PUT", "/persons/me/current-insured-place"): may(INSURED),
    ("identity", "POST", "/persons/me/voucher-activations"): may(INSURED),
    ("identity", "PUT", "/persons/me/payment-password"): may(INSURED),
    ("identity", "POST", "/persons/me/payment-password/verification"): may(INSURED),
    ("identity", "POST", "/face-checks"): may(INSURED),
    ("identity", "GET", "/face-checks/{check_id}"): may(INSURED),
    ("identity", "POST", "/face-provider/callback"): Access(signed=True),
    ("binding", "POST", "/bindings"): may(INSURED),
    ("binding", "GET", "/bindings/{request_id}"): may(INSURED),
    ("binding", "POST", "/materials"): may(INSURED),
    ("binding", "GET", "/bindings/{request_id}/commitment-letter"): may(INSURED),
    ("binding", "POST", "/bindings/{request_id}/commitment-letter/signature"): may(INSURED),
    ("binding", "POST", "/bindings/{request_id}/materials"): may(INSURED),
    ("binding", "GET", "/family"): may(INSURED),
    ("binding", "GET", "/holders/{holder}/family"): may(AUDITOR, OPERATOR),
    ("binding", "GET", "/members/{member}/holders"): may(INSURED, AUDITOR, OPERATOR),
    ("binding", "POST", "/family/members/{member}/revocation"): may(INSURED),
    ("review", "GET", "/cases"): may(Role.REVIEWER),  # the queue of the caller's own regions
    ("review", "POST", "/cases/search"): may(Role.REVIEWER),
    ("review", "GET", "/cases/{case_id}"): REVIEWER_OF_CASE,
    ("review", "POST", "/cases/{case_id}/claim"): REVIEWER_OF_CASE,
    ("review", "POST", "/cases/{case_id}/approve"): REVIEWER_OF_CASE,
    ("review", "POST", "/cases/{case_id}/reject"): REVIEWER_OF_CASE,
    ("review", "GET", "/cases/{case_id}/materials/{sha256}"): REVIEWER_OF_CASE,
    ("review", "GET", "/stats"): may(OPERATOR),
    ("review", "GET", "/policies"): may(OPERATOR),
    ("review", "PUT", "/policies/{region}/{case_type}"): may(OPERATOR),
}


def _token(who: Principal, issued: datetime | None = None) -> str:
    return issue_token(who, timedelta(hours=1), secret=SECRET, now=issued)


def _other_audience() -> str:
    now = datetime.now(UTC)
    claims = {"iss": "qinqing", "aud": "elsewhere", "sub": "p_holder", "role": "insured"}
    claims |= {"iat": now, "exp": now + timedelta(hours=1)}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _valid(who: Principal) -> tuple[Principal, str, None]:
    return who, _token(who), None


HOLDER = Principal("p_holder", Role.INSURED)
TWO_HOURS_AGO = datetime.now(UTC) - timedelta(hours=2)
# Each caller: its principal (None when its token is not valid), its bearer token, and the
# code a token that is not valid is refused with.
CALLERS: dict[str, tuple[Principal | None, str | None, str | None]] = {
    "no token": (None, None, "auth.missing_token"),
    "expired": (None, _token(HOLDER, TWO_HOURS_AGO), "auth.expired_token"),
    "other audience": (None, _other_audience(), "auth.invalid_token"),
    "insured": _valid(HOLDER),
    "operator": _valid(Principal("ops-1", Role.OPERATOR)),
    "auditor": _valid(Principal("audit-1", Role.AUDITOR)),
    "institution": _valid(Principal("clinic-1", Role.INSTITUTION)),
    "reviewer of the case's region": _valid(NANCHANG),
    "reviewer elsewhere": _valid(BEIJING),
}


def expected(access: Access, caller: str) -> int | None:
    """The status the caller must get, or None where it passes the access checks."""
    principal, _, _ = CALLERS[caller]
    if access.public:
        return None
    if access.signed or principal is None:
        return 401
    if principal.role not in access.roles:
        return 403
    if access.case_region and principal is BEIJING:
        return 404
    return None


# Mostly an empty body: a caller who passes is refused for it (422), never for who they are.
# A decision needs a valid one to reach the case, which a reviewer elsewhere must not find.
BODIES = {("review", "POST", "/cases/{case_id}/reject"): {"reason": "materials_unclear"}}


DOCUMENTS = documents()


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Served]:
    async with served() as running:
        yield running


def _url(path: str, stack: Served) -> str:
    values = {
        "case_id": stack.case_id,
        "sha256": stack.material,
        "region": "36",
        "case_type": "member_binding",
        "pseudonym": HOLDER.subject,
    }
    for name, value in values.items():
        path = path.replace(f"{{{name}}}", value)
    return path.replace("{", "").replace("}", "")  # any other id: its own name, unknown


def test_every_route_of_every_service_has_an_entry_in_the_access_table() -> None:
    assert set(routes()) == set(ACCESS)


@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize("route", sorted(ACCESS), ids=" ".join)
async def test_each_route_answers_each_caller_as_the_access_table_says(
    stack: Served, route: tuple[str, str, str], caller: str
) -> None:
    service, method, path = route
    _, token, code = CALLERS[caller]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = BODIES.get(route, {}) if method in ("POST", "PUT") else None
    answer = await stack.clients[service].request(
        method, _url(path, stack), headers=headers, json=body
    )
    documented = DOCUMENTS[service]["paths"][path][method.lower()]["responses"]
    assert str(answer.status_code) in documented, answer.text
    must = expected(ACCESS[route], caller)
    if must is None:
        assert answer.status_code < 500, answer.text
        assert answer.status_code not in (401, 403), answer.text
        if ACCESS[route].case_region:
            assert answer.status_code != 404, answer.text
        return
    assert answer.status_code == must, answer.text
    refusal = answer.json()
    assert set(refusal["message"]) == {"zh", "en"}
    if must == 401 and not ACCESS[route].signed:
        assert refusal["code"] == code
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    if must == 403:
        assert refusal["code"] == "auth.forbidden_role"
