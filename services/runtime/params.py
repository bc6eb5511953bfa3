"""Request values read strictly where a lax reading would be wrong: ids only as the services
hand them out, dates only as ISO 8601 text (never a number taken for seconds since 1970), and
`as_of` as an instant with its offset or a log position."""

# No `from __future__ import annotations`: FastAPI reads the dependency's annotations at run time.

import re
from datetime import date, datetime
from typing import Annotated, ClassVar

from fastapi import Path, Query
from pydantic import BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError

from contracts.errors import DomainError
from services.runtime.events import Position

# What names a record here: a UUID, or a pseudonym in URL-safe base64 (`p_…`, `bc-…`). Nothing
# else can name one, so nothing else reaches a query: least of all NUL, which PostgreSQL
# refuses in text (it answered a 500).
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
PathId = Annotated[str, Path(pattern=ID_PATTERN)]


def _not_a_number(value: object) -> object:
    """Lax pydantic reads 0, 86400 or "1735689600" as a day, counted in seconds since 1970."""
    if isinstance(value, date):  # built in code, not read from a request
        return value
    if not isinstance(value, str) or _is_number(value):
        raise PydanticCustomError("iso_8601", "Input should be ISO 8601 text, not a number")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


IsoDate = Annotated[date, BeforeValidator(_not_a_number)]

_POSITION = re.compile(r"^\d+:\d+$")
_AS_OF_SCHEMA = {
    "anyOf": [{"format": "date-time"}, {"pattern": _POSITION.pattern}],
    "examples": ["2026-11-25T08:00:00+08:00", "1234:5"],
}


class AsOfError(DomainError):
    code: ClassVar[str] = "request.as_of"
    message_zh: ClassVar[str] = "as_of应为带时区的ISO 8601时间，或日志位置<tx>:<seq>"
    message_en: ClassVar[str] = (
        "as_of must be an ISO 8601 instant with its offset, or a log position <tx>:<seq>"
    )
    field: ClassVar[str | None] = "as_of"


async def as_of(
    as_of: Annotated[
        str | None,
        Query(
            max_length=64,
            description="An instant (ISO 8601 with offset) or a log position `<tx>:<seq>`",
            json_schema_extra=_AS_OF_SCHEMA,
        ),
    ] = None,
) -> Position | datetime | None:
    """The `as_of` query parameter, as a dependency (see the module docstring)."""
    if as_of is None:
        return None
    if _POSITION.fullmatch(as_of):
        return Position.parse(as_of)
    try:
        instant = datetime.fromisoformat(as_of)
    except ValueError:
        raise AsOfError from None
    if instant.tzinfo is None:  # which day's midnight, where?
        raise AsOfError
    return instant
