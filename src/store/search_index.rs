//! The message search index (FTS5 trigrams, `messages_fts`) and its backlog.
//!
//! Live, every message is indexed in the transaction that stores it. A bulk load (an import)
//! defers that: messages are stored unindexed and indexed afterwards in large chunks of one
//! `INSERT … SELECT` each, with a larger in-memory buffer, which fills before every flush
//! instead of flushing a few rows per commit (fewer index segments to write and merge).
//!
//! Invariants:
//! - `meta.search_backlog_from`, when present, is the id of the first message not in the index;
//!   every message below it is indexed, none at or above it is. It is written in the same
//!   transaction as the first message left unindexed, and moved (or removed) in the same
//!   transaction as each chunk indexed, so a crash anywhere leaves it true.
//! - While a backlog exists, every new message is deferred too (a bulk-loading applier), or the
//!   backlog is indexed before anything else is applied (a live one, at startup), so
//!   messages indexed live never fall inside it.

use rusqlite::{params, Connection, OptionalExtension};

use super::Error;
use crate::model::Lsn;

/// Messages indexed per transaction while catching up.
const CHUNK: u64 = 250_000;

/// FTS5's in-memory buffer (`hashsize`) while catching up: with more, it flushes fewer, larger
/// segments (a third faster over a million messages). Set inside each chunk's transaction and
/// set back before it commits, so the persistent setting stays the live one.
const BULK_HASH_BYTES: i64 = 64 * 1024 * 1024;

/// The live `hashsize` (migration 010).
const LIVE_HASH_BYTES: i64 = 8 * 1024 * 1024;

/// The first message id not in the index, if any.
///
/// # Errors
/// [`Error::Sqlite`] on a query failure.
pub fn backlog_from(conn: &Connection) -> Result<Option<Lsn>, Error> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'search_backlog_from'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map(|v| v as Lsn))
}

/// Records, in `tx`, that messages from `from` on are not indexed.
pub(super) fn start_backlog(tx: &Connection, from: Lsn) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('search_backlog_from', ?1)",
        params![from as i64],
    )?;
    Ok(())
}

/// The chunks `[start, end)` that index messages `from..=through`.
fn chunks(from: Lsn, through: Lsn) -> impl Iterator<Item = (Lsn, Lsn)> {
    (from..=through)
        .step_by(CHUNK as usize)
        .map(move |start| (start, (start + CHUNK).min(through + 1)))
}

/// Indexes the backlog, a chunk per transaction, up to `through` (the last message id stored);
/// `after_chunk` runs after each commit with the messages indexed so far (the applier
/// checkpoints there and reports progress). Returns the messages indexed.
///
/// # Errors
/// [`Error::Sqlite`]; what was committed stays indexed and the backlog mark says where the
/// rest starts.
pub fn catch_up(
    conn: &mut Connection,
    through: Lsn,
    mut after_chunk: impl FnMut(&mut Connection, u64) -> Result<(), Error>,
) -> Result<u64, Error> {
    let Some(from) = backlog_from(conn)? else {
        return Ok(0);
    };
    let mut indexed = 0;
    for (start, end) in chunks(from, through) {
        let tx = conn.transaction()?;
        let hash_size = "INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', ?1)";
        tx.execute(hash_size, [BULK_HASH_BYTES])?;
        indexed += tx.execute(
            "INSERT INTO messages_fts (rowid, text)
             SELECT id, text FROM messages WHERE id >= ?1 AND id < ?2",
            params![start as i64, end as i64],
        )? as u64;
        tx.execute(hash_size, [LIVE_HASH_BYTES])?;
        if end > through {
            tx.execute("DELETE FROM meta WHERE key = 'search_backlog_from'", [])?;
        } else {
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'search_backlog_from'",
                params![end as i64],
            )?;
        }
        tx.commit()?;
        after_chunk(conn, indexed)?;
        tracing::info!(
            indexed,
            through,
            "store: search index caught up to message {end}"
        );
    }
    if through < from {
        // Nothing stored since the mark (a crash right after it was made).
        conn.execute("DELETE FROM meta WHERE key = 'search_backlog_from'", [])?;
    }
    Ok(indexed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_backlog_once() {
        let got: Vec<_> = chunks(10, 10 + 2 * CHUNK).collect();
        assert_eq!(
            got,
            [
                (10, 10 + CHUNK),
                (10 + CHUNK, 10 + 2 * CHUNK),
                (10 + 2 * CHUNK, 11 + 2 * CHUNK)
            ]
        );
        assert_eq!(chunks(5, 5).collect::<Vec<_>>(), [(5, 6)]);
        assert_eq!(chunks(6, 5).count(), 0);
    }
}
