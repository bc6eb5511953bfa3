"""`qinqing review`: serve the review HTTP API (with its consumers, timer and projection)."""

from __future__ import annotations

from typing import Annotated

import typer

from services.review.app import SCHEMA, ReviewSettings, serve

review_app = typer.Typer(no_args_is_help=True, help="The review service.")


@review_app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8103,
    schema: Annotated[str, typer.Option(help="The service's PostgreSQL schema.")] = SCHEMA,
) -> None:
    """Serve the API, consume binding's and identity's topics, relay the review log."""
    serve(ReviewSettings(), host, port, schema)
