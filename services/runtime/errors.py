"""The one shape of every error answer an API gives."""

from __future__ import annotations

from typing import Any


def error_body(
    code: str, message: tuple[str, str], field: str | None = None, **more: Any
) -> dict[str, Any]:
    """The one shape of every error answer: `{"code", "field", "message": {"zh", "en"}}`, plus
    what a particular refusal adds (`errors` for invalid fields, `max_bytes` for a large body)."""
    zh, en = message
    return {"code": code, "field": field, "message": {"zh": zh, "en": en}, **more}
