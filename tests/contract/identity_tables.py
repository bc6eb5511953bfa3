"""The identity-tables contract: run against the in-memory and the PostgreSQL tables alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.identity.errors import PersonAlreadyRegisteredError
from services.identity.tables import IdentityTables
from services.runtime.events import NO_STREAM, ConcurrencyError
from tests.contract.event_store import ev

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
LOOKUP, OTHER_LOOKUP = "a" * 64, "b" * 64  # the shape of pii.lookup_hash: 64 hex digits


class IdentityTablesContract:
    """Subclasses provide a `tables` fixture giving empty tables over an empty event store."""

    # ---------------------------------------------------------------------------- claims

    async def test_a_registration_claims_its_id_number_with_its_events(
        self, tables: IdentityTables
    ) -> None:
        store = tables.claiming(LOOKUP, "p-1")
        await store.append("person-p-1", NO_STREAM, [ev(n=1)])
        assert await tables.claim_owner(LOOKUP) == "p-1"
        assert [e.data["n"] for e in await store.read_stream("person-p-1")] == [1]
        assert await tables.claim_owner(OTHER_LOOKUP) is None

    async def test_a_claimed_id_number_refuses_a_second_registration_and_writes_nothing(
        self, tables: IdentityTables
    ) -> None:
        await tables.claiming(LOOKUP, "p-1").append("person-p-1", NO_STREAM, [ev(n=1)])
        second = tables.claiming(LOOKUP, "p-2")
        with pytest.raises(PersonAlreadyRegisteredError):
            await second.append("person-p-2", NO_STREAM, [ev(n=2)])
        assert await tables.claim_owner(LOOKUP) == "p-1"
        assert await second.read_stream("person-p-2") == []

    async def test_a_registration_whose_append_fails_leaves_the_number_unclaimed(
        self, tables: IdentityTables
    ) -> None:
        await tables.claiming(OTHER_LOOKUP, "p-1").append("person-p-1", NO_STREAM, [ev(n=1)])
        lost = tables.claiming(LOOKUP, "p-2")
        with pytest.raises(ConcurrencyError):  # the claim commits only with the events
            await lost.append("person-p-1", NO_STREAM, [ev(n=2)])
        assert await tables.claim_owner(LOOKUP) is None
        await tables.claiming(LOOKUP, "p-2").append("person-p-2", NO_STREAM, [ev(n=3)])
        assert await tables.claim_owner(LOOKUP) == "p-2"

    # ---------------------------------------------------------------------------- credentials

    async def test_a_saved_password_hash_is_found_by_person_and_credential(
        self, tables: IdentityTables
    ) -> None:
        await tables.save_credential("p-1", "k-1", "$argon2id$first")
        await tables.save_credential("p-1", "k-2", "$argon2id$second")
        assert await tables.credential("p-1", "k-1") == "$argon2id$first"
        assert await tables.credential("p-1", "k-2") == "$argon2id$second"
        assert await tables.credential("p-2", "k-1") is None
        assert await tables.credential("p-1", "k-3") is None

    async def test_saving_a_credential_again_keeps_the_first_hash(
        self, tables: IdentityTables
    ) -> None:
        await tables.save_credential("p-1", "k-1", "$argon2id$first")
        await tables.save_credential("p-1", "k-1", "$argon2id$rerun")
        assert await tables.credential("p-1", "k-1") == "$argon2id$first"

    # ---------------------------------------------------------------------------- face checks

    async def test_overdue_checks_are_those_at_or_past_their_deadline_earliest_first(
        self, tables: IdentityTables
    ) -> None:
        for check_id, minutes in [("c-late", 2), ("c-future", 61), ("c-early", -30), ("c-on", 0)]:
            await tables.add_pending_check(check_id, NOW + timedelta(minutes=minutes))
        due = await tables.overdue_checks(NOW + timedelta(minutes=2), 10)
        assert due == ["c-early", "c-on", "c-late"]

    async def test_overdue_checks_are_at_most_the_limit_earliest_first(
        self, tables: IdentityTables
    ) -> None:
        for minutes in range(5):
            await tables.add_pending_check(f"c-{minutes}", NOW - timedelta(minutes=minutes))
        assert await tables.overdue_checks(NOW, 2) == ["c-4", "c-3"]

    async def test_adding_a_pending_check_again_keeps_its_first_deadline(
        self, tables: IdentityTables
    ) -> None:
        await tables.add_pending_check("c-1", NOW)
        await tables.add_pending_check("c-1", NOW + timedelta(days=1))
        assert await tables.overdue_checks(NOW, 10) == ["c-1"]

    async def test_a_dropped_check_is_overdue_no_more_and_the_others_stay(
        self, tables: IdentityTables
    ) -> None:
        await tables.add_pending_check("c-1", NOW)
        await tables.add_pending_check("c-2", NOW)
        await tables.drop_pending_check("c-1")
        await tables.drop_pending_check("c-unknown")
        assert await tables.overdue_checks(NOW, 10) == ["c-2"]
