"""The inbox contract: run against the in-memory and the PostgreSQL inbox alike."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from services.runtime.consumer import Inbox


class Effects:
    """An effect that counts its runs, or fails while `failing`."""

    def __init__(self) -> None:
        self.runs = 0
        self.failing = False

    async def __call__(self, conn: object) -> None:
        if self.failing:
            raise RuntimeError("the handler failed")
        self.runs += 1


class InboxContract:
    """Subclasses provide an `inbox` fixture giving an empty inbox."""

    async def test_the_first_delivery_of_an_event_runs_its_effect(self, inbox: Inbox) -> None:
        effect = Effects()
        assert await inbox.once("family-view", uuid4(), effect)
        assert effect.runs == 1

    async def test_a_redelivered_event_has_no_second_effect(self, inbox: Inbox) -> None:
        effect, event_id = Effects(), uuid4()
        await inbox.once("family-view", event_id, effect)
        assert not await inbox.once("family-view", event_id, effect)
        assert effect.runs == 1

    async def test_each_consumer_applies_the_same_event_once_of_its_own(self, inbox: Inbox) -> None:
        effect, event_id = Effects(), uuid4()
        assert await inbox.once("family-view", event_id, effect)
        assert await inbox.once("review-cases", event_id, effect)
        assert not await inbox.once("review-cases", event_id, effect)
        assert effect.runs == 2

    async def test_other_events_of_a_consumer_are_not_duplicates(self, inbox: Inbox) -> None:
        effect = Effects()
        for event_id in (uuid4(), uuid4(), UUID(int=0)):
            assert await inbox.once("family-view", event_id, effect)
        assert effect.runs == 3

    async def test_a_failed_effect_is_not_recorded_and_runs_again_next_time(
        self, inbox: Inbox
    ) -> None:
        effect, event_id = Effects(), uuid4()
        effect.failing = True
        with pytest.raises(RuntimeError, match="the handler failed"):
            await inbox.once("family-view", event_id, effect)
        effect.failing = False
        assert await inbox.once("family-view", event_id, effect)
        assert effect.runs == 1
