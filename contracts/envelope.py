"""The event envelope: CloudEvents 1.0 attributes plus qinqing's stream and audit extensions.

On Kafka it travels in CloudEvents binary mode: every attribute is a `ce_<name>` header, the
body is the event's JSON data, and the message key is the stream id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION: Literal["1.0"] = "1.0"
DATA_CONTENT_TYPE: Literal["application/json"] = "application/json"


class Envelope(BaseModel):
    """Every attribute of a published event except its data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID = Field(description="The event id: unique, stable across redeliveries.")
    source: str = Field(description="The producing service, e.g. /qinqing/binding.")
    type: str = Field(description="Versioned event type, e.g. qinqing.binding.MemberBound.v1.")
    specversion: Literal["1.0"] = SPEC_VERSION
    time: datetime = Field(description="When the event occurred (RFC 3339, UTC).")
    subject: str = Field(description="The stream id (never a personal identifier).")
    datacontenttype: Literal["application/json"] = DATA_CONTENT_TYPE
    streamid: str
    streamversion: int = Field(ge=1)
    globalposition: str = Field(description="<tx_id>:<seq> in the producer's log.")
    schemaversion: int = Field(ge=1)
    correlationid: str | None = None
    causationid: str | None = None
    actor: str | None = Field(default=None, description="Pseudonym or role of who caused it.")


def topic(service: str, version: int = 1) -> str:
    """Topic of a service's events: `qinqing.<service>.v<version>`."""
    return f"qinqing.{service}.v{version}"


def dead_letter_topic(source_topic: str) -> str:
    return f"{source_topic}.dlq"


def event_type(service: str, name: str, schema_version: int) -> str:
    return f"qinqing.{service}.{name}.v{schema_version}"
