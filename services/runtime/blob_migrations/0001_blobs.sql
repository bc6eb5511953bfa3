-- Uploaded materials, stored once and addressed by the SHA-256 of their bytes (applied with
-- search_path set to the `blobs` schema). Events carry only the address and the content type.
-- Rows are never updated: an address names one content for ever.

CREATE TABLE blobs (
    sha256        text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type  text        NOT NULL,
    size          integer     NOT NULL CHECK (size > 0),
    data          bytea       NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT now()
);

-- JPEG, PNG and most PDFs are compressed already: store them out of line without trying again.
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
