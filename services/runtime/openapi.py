"""What every service's OpenAPI document says about refusals: the one error answer, and the
statuses each route lists in its `responses=`."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    zh: str
    en: str


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str | None
    type: str = Field(description="pydantic's error type, e.g. `missing`, `string_too_long`.")
    message: Message


class ErrorAnswer(BaseModel):
    """The body of every refusal. More properties may come (e.g. `max_bytes` on a 413): a
    client reads the code, never the absence of other keys."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(description="Stable, e.g. `binding.family_full`; the message is for people.")
    field: str | None = Field(default=None, description="The input field at fault, if one is.")
    message: Message
    errors: list[FieldError] | None = Field(
        default=None, description="On a 422 for a malformed request: every field at fault."
    )


_RETRY_AFTER = {"Retry-After": {"description": "Seconds", "schema": {"type": "integer"}}}
_CHALLENGE = {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}

# What each status means on any route; a route lists the ones it can answer.
_MEANING: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The body could not be read at all (not UTF-8 JSON, or broken multipart)", {}),
    401: ("No valid credentials: the bearer token is missing, invalid or expired", _CHALLENGE),
    403: ("The caller's role or region may not do this", {}),
    404: ("No such resource, or one the caller may not see", {}),
    409: ("The request conflicts with the current state, or `request.busy`: retry", {}),
    413: ("The request body is larger than this service takes", {}),
    422: ("The request is not valid; `field` (and `errors`) say where", {}),
    423: ("Locked for a while after too many wrong attempts", {}),
    503: ("The database does not answer; retry after `Retry-After`", _RETRY_AFTER),
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for the refusals it can answer, each with the error answer."""
    unknown = set(statuses) - set(_MEANING)
    if unknown:
        raise ValueError(f"no meaning written down for statuses {sorted(unknown)}")
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted(statuses):
        description, headers = _MEANING[status]
        documented[status] = {"model": ErrorAnswer, "description": description}
        if headers:
            documented[status]["headers"] = headers
    return documented
