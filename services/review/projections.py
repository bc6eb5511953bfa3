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
        self._sql: dict[str, str] = {
            "ReviewCaseOpened": f"INSERT INTO {s}.cases (case_id, case_type, request_id, region,"
            " holder, member, status, opened_at, policy_id, policy_version, mode, failed_checks)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'open', $7::text::timestamptz, $8, $9, $10,"
            " $11::text[]) ON CONFLICT (case_id) DO NOTHING",
            "ReviewCaseClaimed": f"UPDATE {s}.cases SET claimed_by = $2 WHERE case_id = $1",
            "MaterialsApproved": f"UPDATE {s}.cases SET status = 'approved', closed_by = $2,"
            " closed_at = $3::text::timestamptz WHERE case_id = $1",
            "MaterialsRejected": f"UPDATE {s}.cases SET status = 'rejected', closed_by = $2,"
            " closed_at = $3::text::timestamptz, reason = $4 WHERE case_id = $1",
            "ReviewCaseEscalated": f"UPDATE {s}.cases SET escalated_at = $2::text::timestamptz"
            " WHERE case_id = $1",
            "ReviewCaseWithdrawn": f"UPDATE {s}.cases SET status = 'withdrawn',"
            " closed_at = $2::text::timestamptz WHERE case_id = $1",
        }

    async def apply(self, conn: asyncpg.Connection, event: EventRecord) -> None:
        sql = self._sql.get(event.type)
        if sql is None:
            return
        d = event.data
        match event.type:
            case "ReviewCaseOpened":
                args: tuple[object, ...] = (
                    d["case_id"], d["case_type"], d["request_id"], d["region"], d["holder"],
                    d["member"], d["opened_at"], d["policy_id"], d["policy_version"], d["mode"],
                    d.get("failed_checks", []),
                )  # fmt: skip
            case "ReviewCaseClaimed":
                args = (d["case_id"], d["claimed_by"])
            case "MaterialsApproved":
                args = (d["case_id"], d["decided_by"], d["decided_at"])
            case "MaterialsRejected":
                args = (d["case_id"], d["decided_by"], d["decided_at"], d["reason"])
            case "ReviewCaseEscalated":
                args = (d["case_id"], d["escalated_at"])
            case _:
                args = (d["case_id"], d["withdrawn_at"])
        await conn.execute(sql, *args)


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
