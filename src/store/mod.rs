//! The SQLite query store: a projection of the journal, plus the accounts tables.
//!
//! Ownership: one applier thread owns the write connection and applies committed journal
//! batches in LSN order (`applier.rs`, the SQL of each operation in `apply.rs`), committing and
//! checkpointing on a cadence (`cadence.rs`) and publishing how far it got (`progress.rs`);
//! reads go through a small pool of connections used from `spawn_blocking` (`pool.rs`), so
//! nothing blocks the async runtime. Schema migrations and the snapshot taken before them are
//! in `schema.rs`; putting such a snapshot back to undo an upgrade in `undo.rs`.
//!
//! Invariants:
//! - `meta.applied_lsn` is written in the same transaction as the rows it covers, so after a
//!   crash the journal replays exactly the missing suffix (and applying is idempotent anyway).
//! - The journal's records are durable in the store only once checkpointed; journal retention
//!   follows the checkpointed LSN, never the applied one.
//! - Tables no journal record rebuilds (agents, tokens, settings, uploads, API keys) are
//!   written by other connections with `synchronous=FULL`: their commits are durable.
//! - Only the applier checkpoints (`wal_autocheckpoint=0` everywhere), so no reader's request
//!   pays for one.
//! - WAL mode: readers never block the applier and see a consistent snapshot.

pub mod applier;
pub mod apply;
pub mod cadence;
pub mod holders;
pub mod pool;
pub mod progress;
pub mod queries;
mod replicated;
pub mod replicated_annotations;
pub mod schema;
pub mod search_index;
pub mod undo;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store (SQLite) error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the data directory was written by a newer kefud (schema {found}, this binary knows {known}); nothing was changed. Run the newer kefud again, or go back to this version with `sudo kefud-rollback` (the package keeps the previous version; it puts back the copy the upgrade took in the data directory's pre-migration/, and the journal replays what came after it), or move the data directory aside and `kefud restore` a backup taken before the upgrade (a `kefud backup` or a `[backup]` one) into an empty data directory")]
    TooNew { found: i64, known: i64 },
    #[error("store worker is gone")]
    Closed,
    #[error("store: {0}")]
    Invalid(String),
}

/// Opens (creating if needed) the database at `path` with the pragmas every connection uses,
/// and migrates it.
///
/// # Errors
/// [`Error`] if SQLite cannot open or migrate it.
pub fn open(path: &Path) -> Result<Connection, Error> {
    let mut conn = connect(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let snapshots = path.parent().map(|dir| dir.join("pre-migration"));
    schema::migrate(&mut conn, snapshots.as_deref())?;
    Ok(conn)
}

/// A connection with the shared settings; `open` must have run once on the file before.
///
/// # Errors
/// [`Error::Sqlite`] if SQLite cannot open the file.
pub fn connect(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A Pi has little memory to spare: 2 MiB of page cache per connection.
    conn.pragma_update(None, "cache_size", -2048)?;
    Ok(conn)
}

/// The store's applied LSN as recorded in `meta`.
///
/// # Errors
/// [`Error::Sqlite`] on a query failure.
pub fn applied_lsn(conn: &Connection) -> Result<u64, Error> {
    Ok(conn.query_row(
        "SELECT value FROM meta WHERE key = 'applied_lsn'",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}
