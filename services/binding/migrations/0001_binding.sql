-- The binding service's own tables beside its event log (applied with search_path set to the
-- service schema). None holds a name or an ID number: masked forms and keyed hashes only.

-- Insured persons as identity's topic describes them, so a holder can name a member by ID
-- number: `id_lookup` is the keyed HMAC identity publishes (pii.lookup_hash), never the number.
CREATE TABLE persons (
    pseudonym      text        PRIMARY KEY,
    id_lookup      text        UNIQUE,
    insured_place  text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Each bind request's holder, for routing outcomes (review decisions and face checks name the
-- request, not the holder's stream), the masked member details the commitment letter prints,
-- and the deadline the expiry timer watches. Written before the request is appended: a row
-- whose request never reached the log is settled by the next expiry run, which finds nothing
-- pending.
CREATE TABLE bind_requests (
    request_id          text        PRIMARY KEY,
    holder              text        NOT NULL,
    member_name_masked  text        NOT NULL,
    member_id_masked    text        NOT NULL,
    requested_on        date        NOT NULL,  -- China's date: the letter is dated with it
    deadline            timestamptz NOT NULL,
    settled             boolean     NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bind_requests_open_deadline ON bind_requests (deadline) WHERE NOT settled;

-- Face checks identity opened for a bind request (FaceCheckRequested's correlation id), so
-- the outcome events, which carry only the check id, find their request.
CREATE TABLE face_checks (
    check_id    text  PRIMARY KEY,
    request_id  text  NOT NULL
);
