-- Per-person data keys for crypto-shredding, kept apart from the event log: events hold only
-- ciphertext, so deleting a person's key row erases them everywhere without touching history.
-- Written only through services.runtime.pii.PostgresKeyVault, which serialises create and erase
-- of one pseudonym with a transaction-scoped advisory lock.

CREATE TABLE person_keys (
    pseudonym    text        PRIMARY KEY,
    wrapped_key  bytea       NOT NULL,  -- nonce || AES-GCM(master key, data key, aad=pseudonym)
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Tombstones: which pseudonyms were erased and when. A pseudonym listed here never gets a key
-- again, so its old ciphertexts read as erased rather than as tampered with.
CREATE TABLE person_erasures (
    pseudonym   text        PRIMARY KEY,
    erased_at   timestamptz NOT NULL DEFAULT now()
);
