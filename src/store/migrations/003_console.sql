-- The console and the widget: shop settings, canned replies, images customers send.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE canned_replies (
    id         INTEGER PRIMARY KEY,
    shortcut   TEXT NOT NULL UNIQUE COLLATE NOCASE,
    text       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- An upload is a file under data_dir/uploads/ named by its id (SHA-256 of the content plus
-- the type's extension); a row per visitor who sent it. Messages refer to it by id.
CREATE TABLE uploads (
    id         TEXT NOT NULL,
    visitor    TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (id, visitor)
);

ALTER TABLE messages ADD COLUMN attachment TEXT;
