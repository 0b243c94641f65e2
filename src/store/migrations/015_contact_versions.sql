-- Cluster mode: what the dispatcher reads on demand instead of holding for every contact and
-- rebuilding by reading every operation at start. Stays empty on a box alone.

-- Per contact, the version of the newest write of its name and details (of any of its
-- identities; a link moves the merged contact's to the kept one, the greater of the two): its
-- HLC time and origin node (u64 as two's-complement i64: compared in Rust, never in SQL).
-- Cluster mode's contact register has not shipped before this migration: nothing to backfill.
CREATE TABLE contact_versions (
    contact_id INTEGER PRIMARY KEY,
    hlc        INTEGER NOT NULL,
    origin     INTEGER NOT NULL
);

-- The start resumes the hybrid logical clock after the greatest time stored: one seek.
CREATE INDEX cluster_ops_by_hlc ON cluster_ops (hlc);
