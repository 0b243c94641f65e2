-- Cluster mode: who holds each conversation across the boxes (journaled: ConversationHeld
-- replaces a conversation's row). holders is JSON for the reads ([{"origin", "seq", "node"
-- (hex), "agent", "name"}], sorted by dot; two or more are a conflict); context is the
-- register's version vector in its binary form, read back at start.
CREATE TABLE conversation_holders (
    conversation_id INTEGER PRIMARY KEY,
    holders         TEXT NOT NULL,
    context         BLOB NOT NULL
);
