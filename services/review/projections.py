"""Review's read models: the case table behind queues and statistics (from review's own log),
and the ID-number lookup hashes of persons (from identity's topic)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.runtime.events import EventRecord, check_schema_name

CASES = "review-cases"
PERSON_LOOKUPS = "review-person-lookups"
PERSON_STREAM_PREFIX = "person-"


class CaseTable:
    """Keeps `<schema>.cases` in step with the case streams; policy changes are not cases."""

    name = CASES

    def __init__(self, schema: str) -> None:
        self.schema = check_schema_name(schema)
        self.tables: Sequence[str] = (f"{schema}.cases",)
        s = self.schema
        # Each case event: the statement that applies it and the data fields it binds, in order.
        self._statements: dict[str, tuple[str, tuple[str, ...]]] = {
            "ReviewCaseOpened": (
                f"INSERT INTO {s}.cases (case_id, case_type, request_id, region, holder, member,"
                " status, opened_at, policy_id, policy_version, mode, failed_checks) VALUES"
                " ($1, $2, $3, $4, $5, $6, 'open', $7::text::timestamptz, $8, $9, $10,"
                " $11::text[]) ON CONFLICT (case_id) DO NOTHING",
                (
                    "case_id",
                    "case_type",
                    "request_id",
                    "region",
                    "holder",
                    "member",
                    "opened_at",
                    "policy_id",
                    "policy_version",
                    "mode",
                    "failed_checks",
                ),
            ),
            "ReviewCaseClaimed": (
                f"UPDATE {s}.cases SET claimed_by = $2 WHERE case_id = $1",
                ("case_id", "claimed_by"),
            ),
            "MaterialsApproved": (
                f"UPDATE {s}.cases SET status = 'approved', closed_by = $2,"
                " closed_at = $3::text::timestamptz WHERE case_id = $1",
                ("case_id", "decided_by", "decided_at"),
            ),
            "MaterialsRejected": (
                f"UPDATE {s}.cases SET status = 'rejected', closed_by = $2,"
                " closed_at = $3::text::timestamptz, reason = $4 WHERE case_id = $1",
                ("case_id", "decided_by", "decided_at", "reason"),
            ),
            "ReviewCaseEscalated": (
                f"UPDATE {s}.cases SET escalated_at = $2::text::timestamptz WHERE case_id = $1",
                ("case_id", "escalated_at"),
            ),
            "ReviewCaseWithdrawn": (
                f"UPDATE {s}.cases SET status = 'withdrawn',"
                " closed_at = $2::text::timestamptz WHERE case_id = $1",
                ("case_id", "withdrawn_at"),
            ),
        }

    async def apply(self, conn: asyncpg.Connection, event: EventRecord) -> None:
        statement = self._statements.get(event.type)
        if statement is None:
            return  # a policy event: not a case
        sql, fields = statement
        # A case opened before the checks were recorded has no `failed_checks`.
        data = {"failed_checks": [], **event.data}
        await conn.execute(sql, *(data[f] for f in fields))


class PersonLookups:
    """Pseudonym -> lookup hash of the ID number; erased persons are forgotten."""

    name = PERSON_LOOKUPS

    def __init__(self, schema: str) -> None:
        s = check_schema_name(schema)
        self.tables: Sequence[str] = (f"{s}.person_lookups",)
        self._upsert = (
            f"INSERT INTO {s}.person_lookups (pseudonym, id_lookup) VALUES ($1, $2)"
            " ON CONFLICT (pseudonym) DO UPDATE SET id_lookup = excluded.id_lookup"
        )
        self._forget = f"DELETE FROM {s}.person_lookups WHERE pseudonym = $1"

    async def apply(self, conn: asyncpg.Connection, event: EventRecord) -> None:
        if event.type == "PersonRegistered" and event.data.get("id_lookup"):
            await conn.execute(self._upsert, event.data["pseudonym"], event.data["id_lookup"])
        elif event.type == "PersonErased":
            await conn.execute(self._forget, event.stream_id.removeprefix(PERSON_STREAM_PREFIX))
