"""`qinqing token`: a signed bearer token for the demo, tests and local calls."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from services.runtime.auth import issue_token, jwt_secret
from services.runtime.logging import configure_logging
from services.runtime.principal import Principal, Role
from services.runtime.settings import Settings


def token_command(
    role: Annotated[Role, typer.Option(help="The caller's role.")],
    region: Annotated[
        list[str] | None,
        typer.Option(help="A reviewer's 6-digit region code (repeatable); 360100 covers 3601xx."),
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Person pseudonym or staff id [default: dev-<role>].")
    ] = None,
    ttl: Annotated[int, typer.Option(min=1, help="Seconds until the token expires.")] = 3600,
) -> None:
    """Print a token signed with QINQING_JWT_SECRET (only the token, for `$(qinqing token …)`)."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        principal = Principal(subject or f"dev-{role.value}", role, tuple(region or ()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(issue_token(principal, timedelta(seconds=ttl), secret=jwt_secret(settings)))
