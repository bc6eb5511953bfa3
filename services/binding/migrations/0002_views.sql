-- The binding service's read models (applied with search_path set to the service schema).
-- `services.binding.projections.BindingViews` keeps both from the service's own log and a
-- rebuild recreates them from it: neither is a source of truth. Pseudonyms only.

-- One row per bind request, as the holder's app shows it (我的家庭成员).
CREATE TABLE family_view (
    holder            text        NOT NULL,
    request_id        text        NOT NULL,
    member            text        NOT NULL,
    -- Recorded by the event that follows the request in the same append: null only if a
    -- projection batch ends between the two.
    relation          text,
    kind              text        NOT NULL,
    method            text        NOT NULL,
    status            text        NOT NULL CHECK (status IN (
                          'awaiting_materials', 'pending_review', 'pending_face',
                          'pending_review_and_face', 'bound', 'rejected', 'expired', 'revoked')),
    waiting_for       text[]      NOT NULL,
    rejection_reason  text,
    rejection_detail  text,
    requested_at      timestamptz NOT NULL,
    since             timestamptz NOT NULL,  -- recorded_at of the event that set the status
    updated_at        timestamptz NOT NULL,
    -- The domain's BindRequest after the last event: the projection's fold goes on from it
    -- instead of reading the request's earlier events again.
    domain_state      jsonb       NOT NULL,
    PRIMARY KEY (holder, request_id),
    CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL)),
    CHECK ((rejection_reason IS NULL) = (rejection_detail IS NULL))
);

-- Which holders have a member bound now, per kind of binding (the same member may be bound
-- by several holders).
CREATE TABLE member_holders (
    member      text        NOT NULL,
    kind        text        NOT NULL,
    holder      text        NOT NULL,
    request_id  text        NOT NULL,
    since       timestamptz NOT NULL,
    PRIMARY KEY (member, kind, holder)
);
