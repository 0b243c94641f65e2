-- API keys of the HTTP API channel: one per integration, bound to one channel, stored as a
-- SHA-256 hash (the key itself is shown once, when created), revocable.

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    channel    TEXT NOT NULL,
    name       TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
