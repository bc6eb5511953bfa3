-- The event store of one service schema (applied with search_path set to that schema).
--
-- Global order: (tx_id, seq). `seq` is a bigserial and unique, but a bigserial is handed out
-- before commit, so a transaction holding seq 10 may commit after one holding seq 11. Readers
-- therefore order by the writing transaction's id (xid8) and read only transactions below the
-- oldest one still running (pg_snapshot_xmin of the current snapshot): nothing can ever commit
-- below that horizon, so a reader never skips a late commit. Writers do not wait on each other.

CREATE TABLE events (
    seq             bigserial   NOT NULL,  -- unique by construction (one sequence)
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    data            json        NOT NULL,  -- json keeps the exact text that was hashed
    metadata        json        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    content_hash    bytea       NOT NULL,
    chain_hash      bytea       NOT NULL,
    PRIMARY KEY (stream_id, stream_version)
);
CREATE INDEX events_global_order ON events (tx_id, seq);

-- Idempotent commands: the first outcome of a command id, returned again on a repeat.
CREATE TABLE commands (
    command_id     uuid        PRIMARY KEY,
    stream_id      text        NOT NULL,
    first_version  integer     NOT NULL,
    last_version   integer     NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);

-- Seals: committed events, in global order, grouped into blocks whose hash chains to the
-- previous block (as a transparency log's tree heads do). Only the sealer writes here.
CREATE TABLE seal_blocks (
    block_no       bigint      PRIMARY KEY,
    first_tx_id    xid8        NOT NULL,
    first_seq      bigint      NOT NULL,
    last_tx_id     xid8        NOT NULL,
    last_seq       bigint      NOT NULL,
    event_count    integer     NOT NULL CHECK (event_count > 0),
    prev_hash      bytea       NOT NULL,
    block_hash     bytea       NOT NULL,
    sealed_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on %.% is refused: the event log is append-only',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER seal_blocks_append_only BEFORE UPDATE OR DELETE ON seal_blocks
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER seal_blocks_no_truncate BEFORE TRUNCATE ON seal_blocks
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- One round trip per command: idempotency check, optimistic concurrency, per-stream hash chain.
-- Returns (first_version, last_version, duplicate). A version conflict raises SQLSTATE QQ001.
CREATE FUNCTION append_events(
    p_stream_id        text,
    p_expected_version integer,
    p_command_id       uuid,
    p_event_ids        uuid[],
    p_types            text[],
    p_schema_versions  integer[],
    p_data             json[],
    p_metadata         json[],
    p_occurred_at      timestamptz[],
    p_content_hashes   bytea[]
) RETURNS TABLE (first_version integer, last_version integer, duplicate boolean)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_current integer;
    v_prev    bytea;
    v_count   integer := cardinality(p_event_ids);
BEGIN
    IF p_command_id IS NOT NULL THEN
        RETURN QUERY SELECT c.first_version, c.last_version, true
                       FROM commands c WHERE c.command_id = p_command_id;
        IF FOUND THEN RETURN; END IF;
    END IF;

    SELECT e.stream_version, e.chain_hash INTO v_current, v_prev
      FROM events e WHERE e.stream_id = p_stream_id
     ORDER BY e.stream_version DESC LIMIT 1;
    v_current := coalesce(v_current, 0);
    v_prev := coalesce(v_prev, '\x'::bytea);
    IF v_current <> p_expected_version THEN
        RAISE EXCEPTION 'stream % is at version %, expected %',
            p_stream_id, v_current, p_expected_version USING ERRCODE = 'QQ001';
    END IF;

    FOR i IN 1 .. v_count LOOP
        v_prev := sha256(v_prev || p_content_hashes[i]);
        INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
                            data, metadata, occurred_at, content_hash, chain_hash)
        VALUES (p_stream_id, p_expected_version + i, p_event_ids[i], p_types[i],
                p_schema_versions[i], p_data[i], p_metadata[i], p_occurred_at[i],
                p_content_hashes[i], v_prev);
    END LOOP;

    IF p_command_id IS NOT NULL THEN
        INSERT INTO commands (command_id, stream_id, first_version, last_version)
        VALUES (p_command_id, p_stream_id, p_expected_version + 1, p_expected_version + v_count);
    END IF;
    RETURN QUERY SELECT p_expected_version + 1, p_expected_version + v_count, false;
END $$;

-- Read models' and relays' positions in this schema's log (or in a Kafka topic's, per consumer).
CREATE TABLE checkpoints (
    name        text        PRIMARY KEY,
    tx_id       xid8        NOT NULL,
    seq         bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Inbox: which events a consumer has already applied, written in the effect's transaction.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
