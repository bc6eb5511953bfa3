"""The `qinqing` command: one entry point, one sub-command group per concern."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="qinqing: event-sourced family-account platform.")


def main() -> None:
    app()
