-- Cluster mode's knowledge base and delivery outcomes. Both tables stay empty on a box alone.

-- Per knowledge-base intent, the version of the last write this box applied (the greatest:
-- last writer wins): its HLC time and origin node; `deleted`: that write was a delete (a
-- tombstone: the entry is gone from kb_entries, and a put of a lower version arriving later
-- does not bring it back). Node ids are u64 stored as their two's-complement i64: compared in
-- Rust, never in SQL.
CREATE TABLE kb_versions (
    intent  TEXT PRIMARY KEY,
    hlc     INTEGER NOT NULL,
    origin  INTEGER NOT NULL,
    deleted INTEGER NOT NULL
) WITHOUT ROWID;

-- Per reply, named by its message's dot (origin, seq) as on every box, the join of the
-- delivery outcomes any box reported (cluster/outcome.rs): `state` pending | dead | delivered
-- as in deliveries, `attempts` > 0 with `pending` meaning failed attempts.
CREATE TABLE delivery_outcomes (
    origin     INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    state      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (origin, seq)
) WITHOUT ROWID;
