-- Cluster mode (several boxes, one inbox). Both tables stay empty on a box alone.

-- Which conversation of this box another box's conversation (home_node, home_id) is. `joined`:
-- this box made it for the other's (a copy: the channels of its home box deliver its replies);
-- 0: the other's conversation was folded into one of this box's own.
CREATE TABLE conversation_homes (
    home_node       INTEGER NOT NULL,
    home_id         INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    joined          INTEGER NOT NULL,
    PRIMARY KEY (home_node, home_id)
) WITHOUT ROWID;
CREATE INDEX conversation_homes_by_conversation ON conversation_homes (conversation_id);

-- Every cluster operation this box holds, by dot: served to boxes that lack a range; the
-- highest seq per origin is how far this box has applied that origin (they apply in order).
CREATE TABLE cluster_ops (
    origin  INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    hlc     INTEGER NOT NULL,
    lsn     INTEGER NOT NULL,
    message INTEGER,
    body    BLOB NOT NULL,
    PRIMARY KEY (origin, seq)
) WITHOUT ROWID;
