"""Parity of every published event with its contract: the model in contracts/ of the same name
accepts exactly what the domain writes, as the relay sends it, and enumerates the same values.

Generated from the services' codecs (the event types each one stores, and so publishes): a
new event type without a contract model, a field only one side has, or an enum value only one
side knows fails here instead of dead-lettering in a consumer.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import annotated_types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from contracts import binding, identity, review
from services.binding.events import binding_codec
from services.identity.handlers import FACE_CHECK_CODEC, PERSON_CODEC
from services.identity.person_events import PersonalData, PersonRegistered
from services.identity.sealing import SEALED_FIELD, SealingEventStore
from services.review.events import CASE_CODEC, POLICY_CODEC
from services.runtime.codec import DomainEvent, PydanticCodec
from services.runtime.events import NO_STREAM, NewEvent
from services.runtime.kafka_codec import to_record
from services.runtime.memory import InMemoryEventStore
from services.runtime.pii import InMemoryKeyVault

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Publisher:
    service: str
    contracts: dict[str, type[BaseModel]]  # the EVENTS of contracts/<service>.py
    codecs: tuple[PydanticCodec[Any], ...]  # every codec whose events its relay publishes

    def codec_of(self, name: str) -> PydanticCodec[Any]:
        return next(c for c in self.codecs if name in c.models)


PUBLISHERS = (
    Publisher("identity", identity.EVENTS, (PERSON_CODEC, FACE_CHECK_CODEC)),
    Publisher("binding", binding.EVENTS, (binding_codec,)),
    Publisher("review", review.EVENTS, (CASE_CODEC, POLICY_CODEC)),
)
PUBLISHED = [
    pytest.param(p, name, id=f"{p.service}.{name}")
    for p in PUBLISHERS
    for codec in p.codecs
    for name in codec.models
]


def test_every_published_event_has_a_contract_model_and_every_model_an_event() -> None:
    for publisher in PUBLISHERS:
        stored = {name for codec in publisher.codecs for name in codec.models}
        assert sorted(stored - set(publisher.contracts)) == [], "published without a contract"
        assert sorted(set(publisher.contracts) - stored) == [], "a contract nothing publishes"


# ---------------------------------------------------------------------------- what is written


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without `| None`, and whether None was allowed."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        (only,) = rest  # our events have no unions but optionals
        return only, len(rest) < len(typing.get_args(annotation))
    return annotation, False


def _values(annotation: Any, field: FieldInfo | None = None) -> st.SearchStrategy[Any]:
    """Any value the domain's type (with its field's constraints) lets an event carry."""
    inner, optional = _unwrap(annotation)
    strategy: st.SearchStrategy[Any]
    limits = {} if field is None else {type(m): m for m in field.metadata}
    pattern = next((getattr(m, "pattern", None) for m in limits.values()), None)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        strategy = written(inner)
    elif typing.get_origin(inner) is tuple:
        item, _ = typing.get_args(inner)
        strategy = st.lists(_values(item), max_size=3).map(tuple)
    elif pattern is not None:
        strategy = st.from_regex(pattern, fullmatch=True)
    elif inner is datetime:  # the domain stamps instants, never wall-clock times
        strategy = st.datetimes(timezones=st.just(UTC))
    elif inner is str and annotated_types.MaxLen in limits:
        strategy = st.text(max_size=limits[annotated_types.MaxLen].max_length)
    elif inner is int and annotated_types.Ge in limits:
        strategy = st.integers(min_value=limits[annotated_types.Ge].ge)
    else:
        strategy = st.from_type(inner)
    return st.none() | strategy if optional else strategy


# What the domain never writes though its type allows it: a registration is appended with its
# personal data; only read back after an erasure does it carry None.
WRITTEN_AS: dict[tuple[type[BaseModel], str], st.SearchStrategy[Any]] = {
    (PersonRegistered, "personal"): st.deferred(lambda: written(PersonalData)),
}


def written(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    fields = {
        name: WRITTEN_AS[(model, name)] if (model, name) in WRITTEN_AS else _values(f.annotation, f)
        for name, f in model.model_fields.items()
    }
    # A model's own validators (e.g. a face check's subject iff someone's face) have the last word.
    return st.fixed_dictionaries(fields).map(_or_none(model)).filter(lambda e: e is not None)


def _or_none(model: type[BaseModel]) -> Any:
    def build(data: dict[str, Any]) -> BaseModel | None:
        try:
            return model(**data)
        except ValueError:
            return None

    return build


async def relayed(publisher: Publisher, event: DomainEvent) -> tuple[str, bytes]:
    """The event's type and Kafka body as the relay sends it: encoded by its codec, appended
    (a person's data sealed on the way, as identity's store does), read from the log."""
    name, version, data = publisher.codec_of(type(event).__name__).encode(event)
    log, vault = InMemoryEventStore(), InMemoryKeyVault()
    pseudonym = data.get("pseudonym")
    if isinstance(pseudonym, str):
        await vault.create_key(pseudonym)
    store = SealingEventStore(log, vault)
    await store.append("s-1", NO_STREAM, [NewEvent(name, dict(data), NOW, version)])
    (recorded,) = [e async for e in log.read_all()]
    record = to_record(recorded, publisher.service)
    ce_type = dict(record.headers)["ce_type"].decode()
    return ce_type, record.value


@pytest.mark.parametrize(("publisher", "name"), PUBLISHED)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
async def test_the_contract_reads_every_event_the_domain_writes_as_it_was_written(
    publisher: Publisher, name: str, data: st.DataObject
) -> None:
    event = data.draw(written(publisher.codec_of(name).models[name]))
    ce_type, body = await relayed(publisher, event)
    assert ce_type == f"qinqing.{publisher.service}.{name}.v1"
    published = publisher.contracts[name].model_validate_json(body)
    assert published.model_dump(mode="json") == json.loads(body)


# ---------------------------------------------------------------------------- enumerations


def _choices(annotation: Any) -> frozenset[str] | None:
    """The values a Literal or an Enum allows; None for an open type."""
    if typing.get_origin(annotation) is typing.Literal:
        return frozenset(typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return frozenset(m.value for m in annotation)
    return None


def _item(annotation: Any) -> Any:
    """The type of one value: without `| None`, and of a tuple's items."""
    inner, _ = _unwrap(annotation)
    return typing.get_args(inner)[0] if typing.get_origin(inner) is tuple else inner


def enumerations(
    contract: type[BaseModel], domain: type[BaseModel], path: str
) -> Iterator[tuple[str, frozenset[str] | None, frozenset[str] | None]]:
    """(field path, the contract's values, the domain's) for each field of either that
    enumerates its values, down through nested models and tuples."""
    assert set(contract.model_fields) == set(domain.model_fields), f"{path}: fields differ"
    for name, field in contract.model_fields.items():
        if name == SEALED_FIELD:  # ciphertext tokens: their values are the domain's once opened
            continue
        ours, theirs = _item(field.annotation), _item(domain.model_fields[name].annotation)
        if isinstance(ours, type) and issubclass(ours, BaseModel):
            yield from enumerations(ours, theirs, f"{path}.{name}")
        elif _choices(ours) is not None or _choices(theirs) is not None:
            yield f"{path}.{name}", _choices(ours), _choices(theirs)


@pytest.mark.parametrize(("publisher", "name"), PUBLISHED)
def test_every_enumerated_field_of_a_contract_lists_exactly_the_domain_values(
    publisher: Publisher, name: str
) -> None:
    domain = publisher.codec_of(name).models[name]
    for path, contract_values, domain_values in enumerations(
        publisher.contracts[name], domain, f"{publisher.service}.{name}"
    ):
        assert contract_values == domain_values, path
