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

-- Appends, in one round trip and one transaction: one command's, or several concurrent
-- commands' (group commit). For each request, in order: a repeated command id returns the first
-- outcome; the expected version must be the stream's current one; the events get the next
-- versions and their hash chain. There is no subtransaction per request (they would cost more
-- than they save): a request that cannot be applied is refused before it writes anything, or
-- undoes the one row it wrote (its command row). Statuses: 'ok' and 'duplicate' (with
-- versions), 'conflict' (stale expected version). Anything else, such as an event id that is
-- already stored, aborts the whole batch with an error; the caller then appends each request
-- on its own to learn which one it was.
CREATE FUNCTION append_batch(
    p_stream_ids        text[],
    p_expected_versions integer[],
    p_command_ids       uuid[],
    p_counts            integer[],     -- events per request, in order
    p_event_ids         uuid[],        -- all requests' events, concatenated
    p_types             text[],
    p_schema_versions   integer[],
    p_data              json[],
    p_metadata          json[],
    p_occurred_at       timestamptz[],
    p_content_hashes    bytea[]
) RETURNS TABLE (status text, first_version integer, last_version integer)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_offset  integer := 0;
    v_stream  text;
    v_expect  integer;
    v_command uuid;
    v_count   integer;
    v_current integer;
    v_prev    bytea;
    v_first   integer;
    v_last    integer;
    v_written integer;
BEGIN
    FOR r IN 1 .. cardinality(p_stream_ids) LOOP
        v_stream := p_stream_ids[r];
        v_expect := p_expected_versions[r];
        v_command := p_command_ids[r];
        v_count := p_counts[r];
        v_offset := v_offset + v_count;  -- events of request r end at v_offset

        IF v_command IS NOT NULL THEN
            INSERT INTO commands (command_id, stream_id, first_version, last_version)
            VALUES (v_command, v_stream, v_expect + 1, v_expect + v_count)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS v_written = ROW_COUNT;
            IF v_written = 0 THEN
                SELECT c.first_version, c.last_version INTO v_first, v_last
                  FROM commands c WHERE c.command_id = v_command;
                RETURN QUERY SELECT 'duplicate', v_first, v_last;
                CONTINUE;
            END IF;
        END IF;

        SELECT e.stream_version, e.chain_hash INTO v_current, v_prev
          FROM events e WHERE e.stream_id = v_stream
         ORDER BY e.stream_version DESC LIMIT 1;
        v_current := coalesce(v_current, 0);
        v_prev := coalesce(v_prev, '\x'::bytea);
        IF v_current <> v_expect THEN
            DELETE FROM commands WHERE command_id = v_command;
            RETURN QUERY SELECT 'conflict', NULL::integer, NULL::integer;
            CONTINUE;
        END IF;

        FOR i IN v_offset - v_count + 1 .. v_offset LOOP
            v_prev := sha256(v_prev || p_content_hashes[i]);
            -- The first row claims the next version; a writer that got there first (committed
            -- while we waited on its row) turns this request into a conflict, not an error.
            INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
                                data, metadata, occurred_at, content_hash, chain_hash)
            VALUES (v_stream, v_expect + i - (v_offset - v_count), p_event_ids[i], p_types[i],
                    p_schema_versions[i], p_data[i], p_metadata[i], p_occurred_at[i],
                    p_content_hashes[i], v_prev)
            ON CONFLICT (stream_id, stream_version) DO NOTHING;
            GET DIAGNOSTICS v_written = ROW_COUNT;
            IF v_written = 0 THEN
                -- Only the first row can meet a conflict: once it is ours, no other writer can
                -- hold the versions after it.
                DELETE FROM commands WHERE command_id = v_command;
                RETURN QUERY SELECT 'conflict', NULL::integer, NULL::integer;
                EXIT;
            END IF;
        END LOOP;
        IF v_written = 1 THEN
            RETURN QUERY SELECT 'ok', v_expect + 1, v_expect + v_count;
        END IF;
    END LOOP;
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
