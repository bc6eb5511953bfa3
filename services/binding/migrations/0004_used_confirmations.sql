-- Identity's step-up proofs (their `jti`) binding has accepted: each unbinds one member, once.
-- A retry of the same unbinding with the same proof is let through (same member and kind).
CREATE TABLE used_confirmations (
    token_id  text        PRIMARY KEY,
    holder    text        NOT NULL,
    member    text        NOT NULL,
    kind      text        NOT NULL,
    used_at   timestamptz NOT NULL DEFAULT now()
);
