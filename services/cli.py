"""The `qinqing` command: one entry point, one sub-command group per concern."""

from __future__ import annotations

import typer

from services.admin import migrate_command, verify_command
from services.bench import bench_command
from services.binding.cli import binding_app
from services.chaos import chaos_command
from services.demo import demo_command
from services.identity.cli import identity_app
from services.review.cli import review_app
from services.runtime.infra import infra_app
from services.tokens import token_command

app = typer.Typer(no_args_is_help=True, help="qinqing: event-sourced family-account platform.")
app.add_typer(infra_app, name="infra")
app.command("demo")(demo_command)
app.command("bench")(bench_command)
app.command("chaos")(chaos_command)
app.command("migrate")(migrate_command)
app.command("token")(token_command)
audit_app = typer.Typer(no_args_is_help=True, help="Auditors' tools over the event logs.")
audit_app.command("verify")(verify_command)
app.add_typer(audit_app, name="audit")
app.add_typer(identity_app, name="identity")
app.add_typer(binding_app, name="binding")
app.add_typer(review_app, name="review")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
