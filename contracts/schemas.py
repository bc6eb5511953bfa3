"""JSON Schema of every published contract, checked in under contracts/schemas/.

Regenerate with `python -m contracts.schemas`; a test fails while the files and the models
differ, so a contract cannot change by accident. An incompatible change needs a new version.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from contracts import binding, identity, review
from contracts.envelope import Envelope

SCHEMA_DIR = Path(__file__).parent / "schemas"

# Every published model, by the file name its schema is kept under.
PUBLISHED: dict[str, type[BaseModel]] = {
    "envelope.v1": Envelope,
    **{f"identity.{name}.v1": model for name, model in identity.EVENTS.items()},
    **{f"binding.{name}.v1": model for name, model in binding.EVENTS.items()},
    **{f"review.{name}.v1": model for name, model in review.EVENTS.items()},
}


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="serialization")
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def expected_files() -> dict[str, str]:
    return {f"{name}.json": render(model) for name, model in PUBLISHED.items()}


def write() -> list[str]:
    SCHEMA_DIR.mkdir(exist_ok=True)
    written = []
    for file_name, text in expected_files().items():
        path = SCHEMA_DIR / file_name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(file_name)
    return written


if __name__ == "__main__":
    for name in write():
        print(f"wrote contracts/schemas/{name}")  # noqa: T201
