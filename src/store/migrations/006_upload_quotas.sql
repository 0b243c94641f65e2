-- Upload quotas per address and in total (not only per visitor id, which the client
-- chooses), and the sweep of uploads no message refers to.
ALTER TABLE uploads ADD COLUMN address TEXT NOT NULL DEFAULT '';
CREATE INDEX uploads_by_time ON uploads (created_at);
CREATE INDEX messages_by_attachment ON messages (attachment) WHERE attachment IS NOT NULL;
