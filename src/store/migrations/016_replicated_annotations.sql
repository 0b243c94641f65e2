-- Cluster mode's conversation labels and ratings (stays empty on a box alone). Per
-- conversation as every box names it (its home box and that box's id) and per register
-- (kind: 8 its label set, 9 its rating, the cluster body kinds), the version of the write this
-- box applied: the greatest (last writer wins), its HLC time and origin node, and its body (the
-- value the conversation shows, applied again over a local record that lost to it). Node ids
-- are u64 stored as their two's-complement i64: compared in Rust, never in SQL.
CREATE TABLE annotation_versions (
    home   INTEGER NOT NULL,
    home_id INTEGER NOT NULL,
    kind   INTEGER NOT NULL,
    hlc    INTEGER NOT NULL,
    origin INTEGER NOT NULL,
    body   BLOB NOT NULL,
    PRIMARY KEY (home, home_id, kind)
) WITHOUT ROWID;
