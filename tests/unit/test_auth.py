"""Bearer tokens: issue and decode, the principal's regions, and `require` on a tiny app."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
import pytest
from fastapi import Depends, FastAPI
from pydantic import SecretStr
from typer.testing import CliRunner

from services import tokens
from services.cli import app as cli
from services.runtime.auth import (
    ConfirmationMethod,
    ConfirmationProof,
    ExpiredTokenError,
    InvalidTokenError,
    configure_auth,
    decode_confirmation,
    decode_token,
    issue_confirmation,
    issue_token,
    jwt_secret,
    require,
)
from services.runtime.principal import Principal, Role
from services.runtime.settings import Settings

SECRET = "s" * 32
HOUR = timedelta(hours=1)
REVIEWER = Principal("staff-7", Role.REVIEWER, ("360100",))


def test_a_token_decodes_to_the_principal_it_was_issued_for() -> None:
    for principal in (REVIEWER, Principal("p_abc", Role.INSURED)):
        assert decode_token(issue_token(principal, HOUR, secret=SECRET), secret=SECRET) == principal


def test_an_expired_token_is_refused_as_expired() -> None:
    token = issue_token(REVIEWER, HOUR, secret=SECRET, now=datetime.now(UTC) - 2 * HOUR)
    with pytest.raises(ExpiredTokenError):
        decode_token(token, secret=SECRET)


def _forged(**claims: Any) -> str:
    now = datetime.now(UTC)
    base = {"iss": "qinqing", "aud": "qinqing", "sub": "x", "role": "auditor"}
    return jwt.encode({**base, "iat": now, "exp": now + HOUR, **claims}, SECRET)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(issue_token(REVIEWER, HOUR, secret="o" * 32), id="wrong-signature"),
        pytest.param(_forged(aud="elsewhere"), id="wrong-audience"),
        pytest.param(_forged(iss="elsewhere"), id="wrong-issuer"),
        pytest.param(_forged(role="superuser"), id="unknown-role"),
        pytest.param(_forged(role=None), id="no-role"),
        pytest.param(_forged(role="reviewer"), id="reviewer-without-region"),
        pytest.param(_forged(role="reviewer", regions="360100"), id="regions-not-a-list"),
        pytest.param(_forged(role="reviewer", regions=["3601"]), id="region-not-6-digits"),
        pytest.param(_forged(regions=["360100"]), id="regions-for-an-unscoped-role"),
        pytest.param(jwt.encode({"sub": "x", "role": "auditor"}, SECRET), id="no-expiry"),
        pytest.param(
            jwt.encode(
                {"iss": "qinqing", "aud": "qinqing", "sub": "x", "role": "auditor", "exp": 2**40},
                None,
                algorithm="none",
            ),
            id="alg-none",
        ),
        pytest.param("not.a.token", id="garbage"),
    ],
)
def test_an_invalid_token_is_refused_as_invalid(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        decode_token(token, secret=SECRET)


@pytest.mark.parametrize(
    ("regions", "region", "covered"),
    [
        (("360100",), "360100", True),
        (("360100",), "360102", True),  # a district of the city
        (("360100",), "360200", False),
        (("360000",), "360981", True),  # anywhere in the province
        (("360102",), "360103", False),
        (("110000", "360102"), "360102", True),
        (("360100",), "3601", False),  # not a region code
    ],
)
def test_a_reviewer_covers_their_regions_and_those_below(
    regions: tuple[str, ...], region: str, covered: bool
) -> None:
    assert Principal("r", Role.REVIEWER, regions).covers(region) is covered


def test_the_signing_key_must_be_long_enough() -> None:
    assert jwt_secret(Settings()) == Settings().jwt_secret.get_secret_value()
    with pytest.raises(ValueError, match="QINQING_JWT_SECRET"):
        jwt_secret(Settings(jwt_secret=SecretStr("short")))


# --- `require` on a tiny app -------------------------------------------------------------------


def _case_region(case: str) -> str | None:
    return {"c1": "360102", "c2": "110101"}.get(case)


def _app() -> FastAPI:
    app = FastAPI()
    configure_auth(app, SECRET)

    @app.get("/me")
    async def me(who: Annotated[Principal, Depends(require(Role.INSURED))]) -> dict[str, str]:
        return {"subject": who.subject}

    @app.get(
        "/cases/{case}",
        dependencies=[Depends(require("reviewer", "auditor", region_of=_case_region))],
    )
    async def case() -> dict[str, str]:
        return {}

    @app.get("/audit", dependencies=[Depends(require("auditor", "operator"))])
    async def audit() -> dict[str, str]:
        return {}

    @app.get("/settlements", dependencies=[Depends(require("institution"))])
    async def settlements() -> dict[str, str]:
        return {}

    return app


APP = _app()
PRINCIPALS = {
    Role.INSURED: Principal("p_me", Role.INSURED),
    Role.REVIEWER: REVIEWER,
    Role.INSTITUTION: Principal("hospital-1", Role.INSTITUTION),
    Role.AUDITOR: Principal("auditor-1", Role.AUDITOR),
    Role.OPERATOR: Principal("ops-1", Role.OPERATOR),
}
ALLOWED = {
    "/me": {Role.INSURED},
    "/cases/c1": {Role.REVIEWER, Role.AUDITOR},
    "/audit": {Role.AUDITOR, Role.OPERATOR},
    "/settlements": {Role.INSTITUTION},
}


async def _get(path: str, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    """One GET through the ASGI app (Starlette's TestClient would need httpx, not a dependency)."""
    headers = [(b"authorization", f"Bearer {token}".encode())] if token is not None else []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("test", 80),
        "client": ("test", 1),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await APP(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body)


def _token(role: Role) -> str:
    return issue_token(PRINCIPALS[role], HOUR, secret=SECRET)


@pytest.mark.parametrize("path", list(ALLOWED))
@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="no-token"),
        pytest.param("garbage", id="bad-token"),
        pytest.param(issue_token(REVIEWER, HOUR, secret="x" * 32), id="foreign-signature"),
        pytest.param(
            issue_token(REVIEWER, HOUR, secret=SECRET, now=datetime.now(UTC) - 2 * HOUR),
            id="expired",
        ),
    ],
)
async def test_without_a_valid_token_every_endpoint_answers_401(
    path: str, token: str | None
) -> None:
    status, headers, body = await _get(path, token)
    assert status == 401
    assert headers["www-authenticate"] == "Bearer"
    assert body["code"] in {"auth.missing_token", "auth.invalid_token", "auth.expired_token"}
    assert set(body["message"]) == {"zh", "en"}


@pytest.mark.parametrize("path", list(ALLOWED))
@pytest.mark.parametrize("role", list(Role))
async def test_each_role_reaches_only_the_endpoints_it_may(path: str, role: Role) -> None:
    status, _, body = await _get(path, _token(role))
    if role in ALLOWED[path]:
        assert status == 200, body
    else:
        assert (status, body["code"]) == (403, "auth.forbidden_role")
        assert set(body["message"]) == {"zh", "en"}


@pytest.mark.parametrize("case", ["c2", "unknown"])
async def test_a_reviewer_is_refused_outside_their_regions(case: str) -> None:
    status, _, body = await _get(f"/cases/{case}", _token(Role.REVIEWER))
    assert (status, body["code"]) == (403, "auth.region_not_covered")


async def test_an_unscoped_role_is_not_limited_by_region() -> None:
    status, _, _ = await _get("/cases/c2", _token(Role.AUDITOR))
    assert status == 200


async def test_the_endpoint_sees_the_callers_principal() -> None:
    status, _, body = await _get("/me", _token(Role.INSURED))
    assert (status, body) == (200, {"subject": "p_me"})


# --- `qinqing token` ---------------------------------------------------------------------------


@pytest.fixture
def quiet_cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # The command configures process-wide logging; keep the test process's configuration.
    monkeypatch.setattr(tokens, "configure_logging", lambda *_: None)
    monkeypatch.setenv("QINQING_JWT_SECRET", SECRET)  # not the dev default: no warning either
    return CliRunner()


def test_the_token_command_prints_a_token_for_the_principal(quiet_cli: CliRunner) -> None:
    args = ["token", "--role", "reviewer", "--region", "360100", "--region", "110000"]
    result = quiet_cli.invoke(cli, [*args, "--subject", "staff-9", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    assert decode_token(result.stdout.strip(), secret=SECRET) == Principal(
        "staff-9", Role.REVIEWER, ("360100", "110000")
    )


@pytest.mark.parametrize(
    "args",
    [["--role", "reviewer"], ["--role", "insured", "--region", "360100"], ["--role", "boss"]],
)
def test_the_token_command_refuses_an_impossible_principal(
    quiet_cli: CliRunner, args: list[str]
) -> None:
    result = quiet_cli.invoke(cli, ["token", *args])
    assert result.exit_code == 2
    assert result.stdout == ""


# ---------------------------------------------------------------------------- confirmations

CONFIRMED_AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def test_a_confirmation_names_the_person_and_how_they_confirmed() -> None:
    proof = issue_confirmation("p-1", ConfirmationMethod.FACE, secret=SECRET, now=CONFIRMED_AT)
    decoded = decode_confirmation(proof, secret=SECRET, now=CONFIRMED_AT + timedelta(minutes=4))
    assert decoded == ConfirmationProof("p-1", ConfirmationMethod.FACE)


def test_a_confirmation_expires_after_minutes() -> None:
    proof = issue_confirmation(
        "p-1", ConfirmationMethod.PAYMENT_PASSWORD, secret=SECRET, now=CONFIRMED_AT
    )
    with pytest.raises(ExpiredTokenError):
        decode_confirmation(proof, secret=SECRET, now=CONFIRMED_AT + timedelta(minutes=6))


def test_an_access_token_never_passes_for_a_confirmation_nor_the_reverse() -> None:
    now = datetime.now(UTC)  # decode_token checks expiry against the real clock
    access = issue_token(Principal("p-1", Role.INSURED), timedelta(hours=1), secret=SECRET)
    with pytest.raises(InvalidTokenError):
        decode_confirmation(access, secret=SECRET, now=now)
    proof = issue_confirmation("p-1", ConfirmationMethod.FACE, secret=SECRET, now=now)
    with pytest.raises(InvalidTokenError):
        decode_token(proof, secret=SECRET)


def test_a_confirmation_signed_with_another_key_is_refused() -> None:
    proof = issue_confirmation("p-1", ConfirmationMethod.FACE, secret="o" * 32, now=CONFIRMED_AT)
    with pytest.raises(InvalidTokenError):
        decode_confirmation(proof, secret=SECRET, now=CONFIRMED_AT)
