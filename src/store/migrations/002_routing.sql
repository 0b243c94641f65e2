-- Smart routing: the knowledge base, each customer message's intent, conversations handed to
-- a person (the scheduler's queue survives a restart through queued_at/team), agents' teams
-- and capacity.

CREATE TABLE kb_entries (
    intent     TEXT PRIMARY KEY,
    examples   TEXT NOT NULL,          -- JSON array of strings
    answer     TEXT NOT NULL,
    team       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

ALTER TABLE messages ADD COLUMN intent TEXT;
ALTER TABLE messages ADD COLUMN intent_score REAL;

-- When the conversation was handed to a person and for which team; NULL while the bot has it.
ALTER TABLE conversations ADD COLUMN queued_at INTEGER;
ALTER TABLE conversations ADD COLUMN team TEXT;
ALTER TABLE conversations ADD COLUMN handoff_reason TEXT;

ALTER TABLE agents ADD COLUMN teams TEXT NOT NULL DEFAULT '';      -- comma-separated
ALTER TABLE agents ADD COLUMN capacity INTEGER NOT NULL DEFAULT 5;  -- open conversations at once

CREATE INDEX conversations_queue ON conversations (queued_at) WHERE queued_at IS NOT NULL AND assignee IS NULL;
