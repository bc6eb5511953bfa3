-- Idempotency keys (draft-ietf-httpapi-idempotency-key-header): a command an HTTP request sent
-- with an Idempotency-Key records the fingerprint of that request (services.runtime.idempotency),
-- and the same command id coming back with another request is refused ('reused') rather than
-- answered with the first outcome. Commands recorded before, or sent without a key, have none.

ALTER TABLE commands ADD COLUMN fingerprint bytea;

-- append_batch() as in 0001, with a fingerprint per request; statuses as there, plus 'reused'.
DROP FUNCTION append_batch(
    text[], integer[], uuid[], integer[], uuid[], text[], integer[], json[], json[],
    timestamptz[], bytea[]
);

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
    p_content_hashes    bytea[],
    p_fingerprints      bytea[]        -- per request: its request's fingerprint, or NULL
) RETURNS TABLE (status text, first_version integer, last_version integer)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_offset  integer := 0;
    v_stream  text;
    v_expect  integer;
    v_command uuid;
    v_print   bytea;
    v_stored  bytea;
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
        v_print := p_fingerprints[r];
        v_offset := v_offset + v_count;  -- events of request r end at v_offset

        IF v_command IS NOT NULL THEN
            INSERT INTO commands (command_id, stream_id, first_version, last_version, fingerprint)
            VALUES (v_command, v_stream, v_expect + 1, v_expect + v_count, v_print)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS v_written = ROW_COUNT;
            IF v_written = 0 THEN
                SELECT c.first_version, c.last_version, c.fingerprint
                  INTO v_first, v_last, v_stored
                  FROM commands c WHERE c.command_id = v_command;
                IF v_print IS NOT NULL AND v_stored IS NOT NULL AND v_print <> v_stored THEN
                    RETURN QUERY SELECT 'reused', NULL::integer, NULL::integer;
                ELSE
                    RETURN QUERY SELECT 'duplicate', v_first, v_last;
                END IF;
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
