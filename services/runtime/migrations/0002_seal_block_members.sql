-- A block lists the sequence numbers and chain hashes it sealed, in global order, so that
-- verification can name the first sealed event that was removed or moved, not just the block.
ALTER TABLE seal_blocks ADD COLUMN seqs bigint[] NOT NULL;
ALTER TABLE seal_blocks ADD COLUMN hashes bytea[] NOT NULL;
