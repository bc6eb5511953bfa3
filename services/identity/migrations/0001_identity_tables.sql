-- The identity service's own tables beside its event log (applied with search_path set to the
-- service schema). None holds plaintext personal data.

-- One person per resident ID number: the key is the ID number's keyed HMAC (pii.lookup_hash),
-- claimed in the transaction that appends the PersonRegistered event, so concurrent
-- registrations of one number leave exactly one claim and one person.
CREATE TABLE id_number_claims (
    lookup_hash  text        PRIMARY KEY,
    pseudonym    text        NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now()
);

-- Payment password hashes, never in an event: PaymentPasswordSet names the credential_id and
-- the person's stream says which credential is current.
CREATE TABLE payment_credentials (
    pseudonym      text        NOT NULL,
    credential_id  text        NOT NULL,
    password_hash  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pseudonym, credential_id)
);

-- Face checks still waiting for an answer, so the expiry timer finds the overdue ones without
-- reading the log. Written before the request is appended and removed after the outcome: a row
-- whose check was never appended, or was already decided, is dropped by the next expiry run.
CREATE TABLE pending_face_checks (
    check_id  text        PRIMARY KEY,
    deadline  timestamptz NOT NULL
);
CREATE INDEX pending_face_checks_deadline ON pending_face_checks (deadline);
