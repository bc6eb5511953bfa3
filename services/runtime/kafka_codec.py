"""Stored events to Kafka records and back: CloudEvents 1.0 binary mode, key = stream id."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from contracts.envelope import DATA_CONTENT_TYPE, SPEC_VERSION, Envelope, event_type
from services.runtime.events import RecordedEvent

CE_PREFIX = "ce_"
CONTENT_TYPE = "content-type"
_CONTENT_TYPE_BYTES = DATA_CONTENT_TYPE.encode()
_ENVELOPE_FIELDS = frozenset(Envelope.model_fields)
# Envelope attribute <- key of the stored event's metadata.
_AUDIT_METADATA = {
    "correlationid": "correlation_id",
    "causationid": "causation_id",
    "actor": "actor",
}

Headers = list[tuple[str, bytes]]


class MalformedMessageError(ValueError):
    """A Kafka record is not a qinqing CloudEvent: bad or missing headers, or a non-JSON body."""


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What the relay hands to the producer."""

    key: bytes
    value: bytes
    headers: Headers


@functools.cache
def _type_and_source(service: str, name: str, schema_version: int) -> tuple[str, str]:
    return event_type(service, name, schema_version), f"/qinqing/{service}"


def attributes_of(event: RecordedEvent, service: str) -> dict[str, str]:
    """The CloudEvents attributes of a stored event, as text (absent audit metadata left out)."""
    type_, source = _type_and_source(service, event.type, event.schema_version)
    values = {
        "id": str(event.event_id),
        "source": source,
        "type": type_,
        "specversion": SPEC_VERSION,
        "time": event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "subject": event.stream_id,
        "streamid": event.stream_id,
        "streamversion": str(event.stream_version),
        "globalposition": str(event.position),
        "schemaversion": str(event.schema_version),
    }
    metadata = event.metadata
    for name, key in _AUDIT_METADATA.items():
        if metadata.get(key) is not None:
            values[name] = str(metadata[key])
    return values


def to_record(event: RecordedEvent, service: str) -> KafkaRecord:
    """Binary content mode: each envelope attribute is a `ce_<name>` header; the body is data."""
    headers: Headers = [(CONTENT_TYPE, _CONTENT_TYPE_BYTES)]
    headers += [(CE_PREFIX + n, v.encode()) for n, v in attributes_of(event, service).items()]
    return KafkaRecord(event.stream_id.encode(), event.data_json.encode(), headers)


def from_record(
    headers: Iterable[tuple[str, bytes]], value: bytes | None
) -> tuple[Envelope, dict[str, Any]]:
    """Parse and validate a record; raises MalformedMessageError with the reason.

    Unknown `ce_*` extensions are ignored (a tolerant reader), so a producer may add one
    without breaking consumers that do not know it yet.
    """
    attributes: dict[str, str] = {}
    for name, raw in headers:
        lowered = name.lower()
        if lowered == CONTENT_TYPE:
            key = "datacontenttype"
        elif lowered.startswith(CE_PREFIX):
            key = lowered[len(CE_PREFIX) :]
        else:
            continue
        if key not in _ENVELOPE_FIELDS:
            continue
        if key in attributes:
            raise MalformedMessageError(f"header {name!r} appears twice")
        try:
            attributes[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessageError(f"header {name!r} is not UTF-8") from None
    try:
        envelope = Envelope.model_validate(attributes)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise MalformedMessageError(f"invalid envelope: {problems}") from None
    if value is None:
        raise MalformedMessageError("record has no body")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessageError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessageError(f"body must be a JSON object, got {type(data).__name__}")
    return envelope, data


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """An event read from another service's topic, shaped as the store's events are."""

    envelope: Envelope
    data: dict[str, Any]

    @property
    def event_id(self) -> UUID:
        return self.envelope.id

    @property
    def stream_id(self) -> str:
        return self.envelope.streamid

    @property
    def stream_version(self) -> int:
        return self.envelope.streamversion

    @property
    def type(self) -> str:
        # qinqing.<service>.<Name>.v<schema version>
        return self.envelope.type.rsplit(".", 2)[-2]

    @property
    def schema_version(self) -> int:
        return self.envelope.schemaversion

    @property
    def occurred_at(self) -> datetime:
        return self.envelope.time

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            key: getattr(self.envelope, name)
            for name, key in _AUDIT_METADATA.items()
            if getattr(self.envelope, name) is not None
        }
