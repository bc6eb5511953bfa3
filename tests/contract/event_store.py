"""The event-store contract: run against the in-memory and the PostgreSQL store alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from services.runtime.events import (
    NO_STREAM,
    START,
    CommandReusedError,
    ConcurrencyError,
    EventStore,
    InvalidAppendError,
    NewEvent,
    RecordedEvent,
)

T0 = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def ev(kind: str = "Happened", n: int = 0, at: datetime = T0) -> NewEvent:
    return NewEvent(kind, {"n": n, "名字": "示例"}, at, metadata={"actor": "tester"})


async def all_events(store: EventStore) -> list[RecordedEvent]:
    return [e async for e in store.read_all()]


class EventStoreContract:
    """Subclasses provide a `store` fixture giving an empty store."""

    async def test_appended_events_are_read_back_in_stream_order(self, store: EventStore) -> None:
        result = await store.append("s-1", NO_STREAM, [ev(n=1), ev(n=2)])
        assert (result.first_version, result.last_version, result.duplicate) == (1, 2, False)
        stream = await store.read_stream("s-1")
        assert [(e.stream_version, e.data["n"]) for e in stream] == [(1, 1), (2, 2)]
        assert stream[0].data["名字"] == "示例"
        assert stream[0].metadata == {"actor": "tester"}
        assert stream[0].occurred_at == T0

    async def test_wrong_expected_version_raises_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        await store.append("s-1", NO_STREAM, [ev(n=1)])
        with pytest.raises(ConcurrencyError):
            await store.append("s-1", NO_STREAM, [ev(n=2), ev(n=3)])
        with pytest.raises(ConcurrencyError):
            await store.append("s-1", 5, [ev(n=4)])
        assert [e.data["n"] for e in await store.read_stream("s-1")] == [1]
        assert len(await all_events(store)) == 1

    async def test_repeated_command_id_returns_first_outcome_and_writes_once(
        self, store: EventStore
    ) -> None:
        command_id = uuid4()
        first = await store.append("s-1", NO_STREAM, [ev(n=1), ev(n=2)], command_id)
        again = await store.append("s-1", NO_STREAM, [ev(n=9)], command_id)
        assert (again.first_version, again.last_version) == (
            first.first_version,
            first.last_version,
        )
        assert again.duplicate
        assert [e.data["n"] for e in await store.read_stream("s-1")] == [1, 2]

    async def test_a_command_id_with_another_fingerprint_is_refused_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        command_id = uuid4()
        await store.append("s-1", NO_STREAM, [ev(n=1)], command_id, b"first request")
        with pytest.raises(CommandReusedError):
            await store.append("s-1", NO_STREAM, [ev(n=2)], command_id, b"another request")
        with pytest.raises(CommandReusedError):  # on another stream too
            await store.append("s-2", NO_STREAM, [ev(n=3)], command_id, b"another request")
        assert [e.data["n"] for e in await store.read_stream("s-1")] == [1]
        assert await store.read_stream("s-2") == []

    async def test_a_command_id_with_its_own_fingerprint_returns_the_first_outcome(
        self, store: EventStore
    ) -> None:
        command_id, unprinted = uuid4(), uuid4()
        await store.append("s-1", NO_STREAM, [ev(n=1)], command_id, b"first request")
        again = await store.append("s-1", NO_STREAM, [ev(n=2)], command_id, b"first request")
        assert (again.first_version, again.last_version, again.duplicate) == (1, 1, True)
        await store.append("s-2", NO_STREAM, [ev(n=3)], unprinted)
        assert await store.command_fingerprint(command_id) == b"first request"
        assert await store.command_fingerprint(unprinted) is None
        assert await store.command_fingerprint(uuid4()) is None
        # A command recorded without a fingerprint cannot be told apart: it is a repeat.
        assert (await store.append("s-2", NO_STREAM, [ev(n=4)], unprinted, b"any")).duplicate
        assert [e.data["n"] for e in await store.read_stream("s-1")] == [1]
        assert [e.data["n"] for e in await store.read_stream("s-2")] == [3]

    async def test_read_all_follows_commit_order_across_streams(self, store: EventStore) -> None:
        await store.append("a", NO_STREAM, [ev(n=1)])
        await store.append("b", NO_STREAM, [ev(n=2), ev(n=3)])
        await store.append("a", 1, [ev(n=4)])
        events = await all_events(store)
        assert [e.data["n"] for e in events] == [1, 2, 3, 4]
        positions = [e.position for e in events]
        assert positions == sorted(positions)
        assert len(set(positions)) == 4

    async def test_read_all_resumes_after_a_position(self, store: EventStore) -> None:
        for n in range(5):
            await store.append(f"s-{n}", NO_STREAM, [ev(n=n)])
        events = await all_events(store)
        after = [e.data["n"] async for e in store.read_all(events[1].position, batch_size=2)]
        assert after == [2, 3, 4]

    async def test_read_all_stops_at_an_upper_bound(self, store: EventStore) -> None:
        for n in range(5):
            await store.append(f"s-{n}", NO_STREAM, [ev(n=n)])
        events = await all_events(store)
        upto = [e.data["n"] async for e in store.read_all(START, until=events[2].position)]
        assert upto == [0, 1, 2]

    async def test_hash_chain_links_each_event_to_its_predecessor(self, store: EventStore) -> None:
        await store.append("s-1", NO_STREAM, [ev(n=1)])
        await store.append("s-1", 1, [ev(n=2)])
        first, second = await store.read_stream("s-1")
        assert first.chain_hash != second.chain_hash
        assert len(second.chain_hash) == 32

    async def test_content_hash_is_the_pinned_canonical_digest(self, store: EventStore) -> None:
        # Pinned: changing the canonical encoding would make every stored log fail to verify.
        fixed = NewEvent(
            "Fixed", {"k": "v"}, T0, event_id=UUID("00000000-0000-4000-8000-000000000001")
        )
        await store.append("fixed", NO_STREAM, [fixed])
        (recorded,) = await store.read_stream("fixed")
        assert recorded.content_hash.hex() == (
            "a4cd3777ced3cd989dcff44479582bfb405385ec9adaeebe4680534eb32b204e"
        )

    async def test_bad_appends_are_refused_with_a_reason(self, store: EventStore) -> None:
        with pytest.raises(InvalidAppendError, match="no events"):
            await store.append("s-1", NO_STREAM, [])
        with pytest.raises(InvalidAppendError, match="expected_version"):
            await store.append("s-1", -2, [ev()])
        with pytest.raises(InvalidAppendError, match="timezone"):
            await store.append("s-1", NO_STREAM, [NewEvent("X", {}, datetime(2026, 1, 1))])
        twice = ev()
        with pytest.raises(InvalidAppendError, match="repeats an event id"):
            await store.append("s-1", NO_STREAM, [twice, twice])
        assert await all_events(store) == []

    async def test_an_event_id_is_stored_once(self, store: EventStore) -> None:
        once = ev()
        await store.append("s-1", NO_STREAM, [once])
        with pytest.raises(InvalidAppendError, match="already stored"):
            await store.append("s-2", NO_STREAM, [once])
        assert await store.read_stream("s-2") == []

    async def test_read_all_stops_at_a_time_bound(self, store: EventStore) -> None:
        await store.append("s-1", NO_STREAM, [ev(n=1)])
        (first,) = await all_events(store)
        later = first.recorded_at + timedelta(microseconds=1)
        assert [e.event_id async for e in store.read_all(until_time=later)] == [first.event_id]
        before = first.recorded_at - timedelta(seconds=1)
        assert [e async for e in store.read_all(until_time=before)] == []
