-- Channels: each message's route (the identity it came in on, or the one a reply goes out
-- to), the outbox of replies to channels other than the web widget, linked contacts.

ALTER TABLE messages ADD COLUMN via_channel TEXT;
ALTER TABLE messages ADD COLUMN via_external_id TEXT;

-- Before linking existed every contact had exactly one identity, so that is where each of
-- its customer messages came in.
UPDATE messages SET (via_channel, via_external_id) =
    (SELECT channel, external_id FROM identities i WHERE i.contact_id = messages.contact_id LIMIT 1)
WHERE sender = 'visitor';

-- A client id is unique per identity (the client that made it), not per contact: two linked
-- contacts may both have used "1".
DROP INDEX messages_by_client_id;
CREATE UNIQUE INDEX messages_by_client_id ON messages (via_channel, via_external_id, client_id)
    WHERE client_id IS NOT NULL;

-- The outbox: a row per reply (agent or bot) routed to a channel other than the web widget,
-- created when the reply is applied, and per conversation event (opened, resolved) on a
-- channel with a webhook; a channel adapter delivers pending rows in order.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,  -- the LSN of what it delivers: the message id, or the event's record
    kind            TEXT NOT NULL,        -- message | conversation_opened | conversation_resolved
    conversation_id INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    state       TEXT NOT NULL,            -- pending | delivered | dead
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,         -- when the reply was written or the event happened
    updated_at  INTEGER NOT NULL
);
CREATE INDEX deliveries_pending ON deliveries (channel, id) WHERE state = 'pending';

-- A contact linked into another (same person on two channels) points at it; so does a
-- conversation whose messages were folded into the other contact's open one.
ALTER TABLE contacts ADD COLUMN merged_into INTEGER;
ALTER TABLE conversations ADD COLUMN merged_into INTEGER;
