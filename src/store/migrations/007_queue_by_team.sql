-- The scheduler reads its queue back from the store a window at a time, per team, and at
-- start it reads only what it needs: these keep those reads proportional to what they
-- return, not to how many conversations wait (a spam flood queues a conversation each).
CREATE INDEX conversations_queue_by_team ON conversations (COALESCE(team, ''), queued_at, id)
    WHERE queued_at IS NOT NULL AND assignee IS NULL AND status = 'waiting';
CREATE INDEX conversations_open_by_assignee ON conversations (assignee)
    WHERE assignee IS NOT NULL AND status IN ('waiting', 'in_progress');
