"""Identity served for the fault suite with its face provider outside the process.

`qinqing identity serve` answers face checks with its in-process simulator, which verifies
every face at once; the suite needs some faces to fail, and answers that survive identity's
own crash. So here the simulator never answers, and the suite's driver answers each check
through the signed provider callback (`POST /face-provider/callback`), as a real provider
does. Run as `python -m services.chaos.identity --port P --schema S`.
"""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from services.identity.app import SCHEMA, IdentitySettings, build_app
from services.identity.face_provider import FaceSimulator, SimulatedOutcome
from services.runtime.logging import configure_logging
from services.runtime.workers import utc_now

COMMAND = ["-m", "services.chaos.identity"]  # after the interpreter


def main(
    port: Annotated[int, typer.Option(help="Port to listen on.")],
    schema: Annotated[str, typer.Option(help="The service's PostgreSQL schema.")] = SCHEMA,
) -> None:
    settings = IdentitySettings()
    configure_logging(settings.log_level, settings.log_json)
    silent = FaceSimulator(utc_now, SimulatedOutcome(answers=False))
    app = build_app(settings, schema=schema, simulator=silent)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None)


if __name__ == "__main__":
    typer.run(main)
