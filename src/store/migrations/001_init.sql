-- kefud store, schema version 1. Everything but agents and tokens is derived from the journal.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('applied_lsn', 0);

CREATE TABLE contacts (
    id         INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE identities (
    channel     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    contact_id  INTEGER NOT NULL REFERENCES contacts(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (channel, external_id)
) WITHOUT ROWID;
CREATE INDEX identities_by_contact ON identities (contact_id);

CREATE TABLE conversations (
    id               INTEGER PRIMARY KEY,
    contact_id       INTEGER NOT NULL REFERENCES contacts(id),
    status           TEXT NOT NULL,
    assignee         INTEGER,
    created_at       INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL,
    last_message_id  INTEGER,
    message_count    INTEGER NOT NULL DEFAULT 0,
    resolved_at      INTEGER
);
-- The console's inbox: by status, newest activity first; and all, newest first.
CREATE INDEX conversations_by_status ON conversations (status, last_activity_at DESC, id DESC);
CREATE INDEX conversations_by_activity ON conversations (last_activity_at DESC, id DESC);
CREATE INDEX conversations_by_contact ON conversations (contact_id, id);

-- A message's id is the LSN of the journal record that added it.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    contact_id      INTEGER NOT NULL REFERENCES contacts(id),
    sender          TEXT NOT NULL,
    agent_id        INTEGER,
    client_id       TEXT,
    text            TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE INDEX messages_by_contact ON messages (contact_id, id);
CREATE UNIQUE INDEX messages_by_client_id ON messages (contact_id, client_id) WHERE client_id IS NOT NULL;

-- Full-text search over message text; trigram so Chinese and English both match substrings.
CREATE VIRTUAL TABLE messages_fts USING fts5 (text, content = 'messages', content_rowid = 'id', tokenize = 'trigram');

-- Every status transition, keyed by the LSN of its journal record.
CREATE TABLE conversation_events (
    lsn             INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    from_status     TEXT NOT NULL,
    to_status       TEXT NOT NULL,
    assignee        INTEGER,
    by_agent        INTEGER,
    at              INTEGER NOT NULL
);
CREATE INDEX conversation_events_by_conversation ON conversation_events (conversation_id, lsn);

-- Accounts are administered directly in the store (by the CLI or the API), not journaled.
CREATE TABLE agents (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE tokens (
    hash       BLOB PRIMARY KEY,
    agent_id   INTEGER NOT NULL REFERENCES agents(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
