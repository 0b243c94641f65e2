-- Cluster mode lists a conversation's messages in the order of their cluster operations
-- (HLC, origin, seq), the same on every box: each message's operation, found by its local id.
CREATE INDEX cluster_ops_by_message ON cluster_ops (message) WHERE message IS NOT NULL;
