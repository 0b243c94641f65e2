-- The message search index (FTS5) buffers new terms in memory and merges its on-disk segments
-- as it grows. Defaults: a 1 MiB buffer, merging every 4 segments of a level. With an 8 MiB
-- buffer and merges every 8 segments, each message's terms are rewritten fewer times: a
-- quarter less time per message and fewer bytes written to the card (BENCHMARKS.md, import),
-- for at most twice as many segments to read per search.
INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', 8388608);
INSERT INTO messages_fts (messages_fts, rank) VALUES ('automerge', 8);
