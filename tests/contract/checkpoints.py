"""The checkpoint-store contract: run against the in-memory and the PostgreSQL store alike."""

from __future__ import annotations

from services.runtime.checkpoints import CheckpointStore
from services.runtime.events import START, Position

# A transaction id of the second xid epoch: an xid8 counts on past the 32-bit xid.
LATE = Position(2**32 + 5, 7)


class CheckpointStoreContract:
    """Subclasses provide a `checkpoints` fixture giving an empty store."""

    async def test_a_name_never_saved_starts_at_the_beginning(
        self, checkpoints: CheckpointStore
    ) -> None:
        assert await checkpoints.load("relay") == START

    async def test_a_saved_position_is_loaded_back(self, checkpoints: CheckpointStore) -> None:
        await checkpoints.save("relay", Position(41, 3))
        assert await checkpoints.load("relay") == Position(41, 3)

    async def test_saving_again_replaces_the_position(self, checkpoints: CheckpointStore) -> None:
        await checkpoints.save("relay", Position(41, 3))
        await checkpoints.save("relay", Position(57, 9))
        assert await checkpoints.load("relay") == Position(57, 9)

    async def test_each_name_keeps_its_own_position(self, checkpoints: CheckpointStore) -> None:
        await checkpoints.save("relay", Position(41, 3))
        await checkpoints.save("family-view", Position(12, 1))
        assert await checkpoints.load("relay") == Position(41, 3)
        assert await checkpoints.load("family-view") == Position(12, 1)
        assert await checkpoints.load("audit-trail") == START

    async def test_a_transaction_id_past_32_bits_comes_back_whole(
        self, checkpoints: CheckpointStore
    ) -> None:
        await checkpoints.save("relay", LATE)
        assert await checkpoints.load("relay") == LATE
