-- Labels the shop defines (admins; not journaled, like canned replies) and the ones agents put
-- on conversations (journaled: ConversationLabeled replaces a conversation's set). A deleted
-- label's rows in conversation_labels stay and are ignored by the reads, which join labels:
-- so a label's id is never given again (AUTOINCREMENT), or a new label would show up on the
-- conversations that carried a deleted one.
CREATE TABLE labels (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    color      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE conversation_labels (
    conversation_id INTEGER NOT NULL,
    label_id        INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, label_id)
) WITHOUT ROWID;
CREATE INDEX conversation_labels_by_label ON conversation_labels (label_id, conversation_id);

-- Customers' ratings of resolved conversations (journaled: ConversationRated), one per
-- conversation (the latest), with the agent who last held it, for the report per agent; lsn
-- is the record's, for clock-step corrections.
CREATE TABLE ratings (
    conversation_id INTEGER PRIMARY KEY,
    score           INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment         TEXT NOT NULL,
    agent_id        INTEGER,
    rated_at        INTEGER NOT NULL,
    lsn             INTEGER NOT NULL
);
CREATE INDEX ratings_by_time ON ratings (rated_at);
