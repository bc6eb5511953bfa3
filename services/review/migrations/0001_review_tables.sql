-- Review's read models beside its event log (applied with search_path set to the service
-- schema). Both are rebuildable: `cases` from review's own log, `person_lookups` from
-- identity's topic. Neither holds plaintext personal data: persons are pseudonyms, and an ID
-- number is known only by its keyed HMAC (identity's lookup hash).

-- One row per review case, as its stream says (projection `review-cases`).
CREATE TABLE cases (
    case_id         text        PRIMARY KEY,
    case_type       text        NOT NULL,
    request_id      text        NOT NULL,
    region          text        NOT NULL,  -- 6-digit 行政区划 code
    -- The province and city of the region: a reviewer's region is one of the three levels,
    -- so each queue query is an equality on one column, read in order from one index.
    province        text        NOT NULL GENERATED ALWAYS AS (left(region, 2)) STORED,
    city            text        NOT NULL GENERATED ALWAYS AS (left(region, 4)) STORED,
    holder          text        NOT NULL,
    member          text        NOT NULL,
    status          text        NOT NULL,  -- open | approved | rejected | withdrawn
    opened_at       timestamptz NOT NULL,
    claimed_by      text,
    escalated_at    timestamptz,
    closed_at       timestamptz,
    closed_by       text,                  -- reviewer or `policy:...`; NULL when withdrawn
    reason          text,
    policy_id       text        NOT NULL,
    policy_version  integer     NOT NULL,
    mode            text        NOT NULL,
    failed_checks   text[]      NOT NULL DEFAULT '{}'
);
-- The queue: open cases of one region level, oldest first, keyset-paginated.
CREATE INDEX cases_open_region ON cases (region, opened_at, case_id) WHERE status = 'open';
CREATE INDEX cases_open_city ON cases (city, opened_at, case_id) WHERE status = 'open';
CREATE INDEX cases_open_province ON cases (province, opened_at, case_id) WHERE status = 'open';
-- Search by ID number: the person's pseudonym, as holder or as member.
CREATE INDEX cases_open_holder ON cases (holder) WHERE status = 'open';
CREATE INDEX cases_open_member ON cases (member) WHERE status = 'open';
-- The escalation timer, and decisions per hour for the operators.
CREATE INDEX cases_to_escalate ON cases (opened_at) WHERE status = 'open' AND escalated_at IS NULL;
CREATE INDEX cases_decided ON cases (closed_at) WHERE closed_by IS NOT NULL;

-- Pseudonym <-> keyed hash of the ID number, from identity's PersonRegistered; an erasure
-- forgets the row (projection `review-person-lookups`, fed through the inbox).
CREATE TABLE person_lookups (
    pseudonym  text PRIMARY KEY,
    id_lookup  text NOT NULL
);
CREATE INDEX person_lookups_by_hash ON person_lookups (id_lookup);
