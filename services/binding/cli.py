"""`qinqing binding`: serve the binding HTTP API (with its consumers, timer and projections)."""

from __future__ import annotations

from typing import Annotated

import typer

from services.binding.app import SCHEMA, BindingSettings, serve

binding_app = typer.Typer(no_args_is_help=True, help="The binding service.")


@binding_app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8102,
    schema: Annotated[str, typer.Option(help="The service's PostgreSQL schema.")] = SCHEMA,
) -> None:
    """Serve the API, consume identity's and review's topics, relay the binding log."""
    serve(BindingSettings(), host, port, schema)
