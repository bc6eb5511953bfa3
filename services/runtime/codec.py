"""Stored-event codec for pydantic event models, with upcasters for old schema versions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from services.runtime.events import RecordedEvent


class DomainEvent(BaseModel):
    """Base of every event model: frozen, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: ClassVar[int] = 1


E = TypeVar("E", bound=DomainEvent)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventTypeError(LookupError):
    """A stored event whose type no model of this service knows."""


class PydanticCodec(Generic[E]):
    """Type name = class name; `upcasters[(type, v)]` turns version v data into version v+1."""

    def __init__(
        self,
        models: Iterable[type[E]],
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
    ) -> None:
        self.models = {m.__name__: m for m in models}
        self.upcasters = dict(upcasters or {})

    def encode(self, event: E) -> tuple[str, int, Mapping[str, Any]]:
        return type(event).__name__, event.schema_version, event.model_dump(mode="json")

    def decode(self, recorded: RecordedEvent) -> E:
        model = self.models.get(recorded.type)
        if model is None:
            raise UnknownEventTypeError(f"no model for stored event type {recorded.type!r}")
        data, version = recorded.data, recorded.schema_version
        while version < model.schema_version:
            data = self.upcasters[(recorded.type, version)](data)
            version += 1
        return model.model_validate(data)
