"""Stored events to Kafka records and back: CloudEvents 1.0 binary mode, key = stream id."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from pydantic import ValidationError

from contracts.envelope import DATA_CONTENT_TYPE, SPEC_VERSION, Envelope, event_type
from services.runtime.events import RecordedEvent

CE_PREFIX = "ce_"
CONTENT_TYPE = "content-type"
_ENVELOPE_FIELDS = frozenset(Envelope.model_fields)
# envelope_of() fills __dict__ directly: it relies on Envelope having no post-init hook.
assert Envelope.__pydantic_post_init__ is None

Headers = list[tuple[str, bytes]]


class MalformedMessageError(ValueError):
    """A Kafka record is not a qinqing CloudEvent: bad or missing headers, or a non-JSON body."""


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What the relay hands to the producer."""

    key: bytes
    value: bytes
    headers: Headers


def envelope_of(event: RecordedEvent, service: str) -> Envelope:
    """The envelope of a stored event, built without validation: the store already checked it.

    Rebuilds make one per event, and `model_construct` alone would cost as much as reading the
    event, so the instance is assembled the way `model_construct` does it, with every field given.
    """
    metadata = event.metadata

    def text(key: str) -> str | None:
        value = metadata.get(key)
        return None if value is None else str(value)

    values = {
        "id": event.event_id,
        "source": f"/qinqing/{service}",
        "type": event_type(service, event.type, event.schema_version),
        "specversion": SPEC_VERSION,
        "time": event.occurred_at.astimezone(UTC),
        "subject": event.stream_id,
        "datacontenttype": DATA_CONTENT_TYPE,
        "streamid": event.stream_id,
        "streamversion": event.stream_version,
        "globalposition": str(event.position),
        "schemaversion": event.schema_version,
        "correlationid": text("correlation_id"),
        "causationid": text("causation_id"),
        "actor": text("actor"),
    }
    envelope = Envelope.__new__(Envelope)
    object.__setattr__(envelope, "__dict__", values)
    object.__setattr__(envelope, "__pydantic_fields_set__", set(_ENVELOPE_FIELDS))
    object.__setattr__(envelope, "__pydantic_extra__", None)
    object.__setattr__(envelope, "__pydantic_private__", None)
    return envelope


def _header_text(name: str, value: Any) -> str:
    if name == "time":
        return str(value.isoformat().replace("+00:00", "Z"))
    return str(value)


def to_record(event: RecordedEvent, service: str) -> KafkaRecord:
    """Binary content mode: each envelope attribute is a `ce_<name>` header; the body is data."""
    envelope = envelope_of(event, service)
    headers: Headers = [(CONTENT_TYPE, DATA_CONTENT_TYPE.encode())]
    for name in _ENVELOPE_FIELDS - {"datacontenttype"}:
        value = getattr(envelope, name)
        if value is not None:
            headers.append((CE_PREFIX + name, _header_text(name, value).encode()))
    headers.sort()
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
