"""The `qinqing` command: one entry point, one sub-command group per concern."""

from __future__ import annotations

import typer

from services.bench import bench_command
from services.runtime.infra import infra_app

app = typer.Typer(no_args_is_help=True, help="qinqing: event-sourced family-account platform.")
app.add_typer(infra_app, name="infra")
app.command("bench")(bench_command)


def main() -> None:
    app()
