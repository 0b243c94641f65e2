//! The write-ahead journal: the daemon's source of truth and its durability promise.
//!
//! # Format
//! The journal directory holds segment files named `{first_lsn:020}.wal`. Each starts with a
//! 32-byte header and its seal extension in a sector of its own (`segment.rs`); frames
//! (`frame.rs`) follow from the sector after the next, each batch ended by a padding frame
//! that pads it to a sector boundary (its seal), and the rest of the file is zeros written
//! ahead of the records (`appender.rs`):
//!
//! ```text
//! len u32 LE | crc32c u32 LE | lsn u64 LE | kind u8 | payload[len]
//! crc32c covers: segment first_lsn u64 LE | len | lsn | kind | payload
//! ```
//!
//! LSNs start at 1 and increase by exactly one per record across segments. The payload is one
//! operation (`op.rs`), `kind` says which.
//!
//! # Durability contract
//! - An inbound message is acknowledged (WebSocket ack, HTTP 2xx, MQTT PUBACK) only after the
//!   durable LSN published by the writer has reached its record, i.e. after the batch's
//!   synchronous (`O_DSYNC`) write returned.
//! - Acks go out in commit order: each connection acks its messages in the order it sent them,
//!   and the durable LSN only grows.
//! - Processing is idempotent on the sender's `client_id`: a resend is answered with the first
//!   message id and journals nothing.
//! - Outbound messages are journaled first, then sent: the journal is the outbox.
//!
//! # Media assumptions
//! A synchronous write (or `fdatasync`) returning means its data survives power loss (true for
//! ext4 on SD cards and SSDs that honour flushes). A write that has not returned may be lost or
//! persist partly, in any order of sectors: so only the region after the last completed write
//! — the tail of the last segment — can be torn. No write rewrites a sector holding an earlier
//! batch, so a torn write cannot damage acknowledged records (a card that corrupts sectors it
//! was not writing is damage, which recovery refuses).
//!
//! # Recovery policy (`recovery.rs`)
//! A batch is kept whole or not at all: in a sealed segment the records end after the last
//! padding frame, and records after it are a batch whose write was torn (its sectors may
//! persist in part, in any order), none of them acknowledged, since acks wait for the whole
//! write. So records the dispatcher glued into one batch (a record and its cluster stamp)
//! survive a power cut together or not at all. Version 1 and unsealed version 2 segments,
//! written before sealing, do not say where their batches end: there each frame is its own
//! unit, and the writer never appends to them.
//!
//! Zeros after the last record are the end of the records, in any segment. Only a torn tail
//! is cleared (overwritten with zeros): the bytes of the last segment from the end of its last
//! whole batch on, when nothing in them can have been acknowledged. The writer writes a batch
//! only after the previous fsync returned, so a torn write is the last thing in the file, and
//! the store applies only synced records. Hence a bad frame or an unsealed batch is damage,
//! not a torn write, when the store has applied a record of that batch, or when any valid
//! frame of the segment with a later LSN follows the first bad byte at any offset (the bit
//! flip in the middle of a segment an SD card shows after a power cut). Damage anywhere stops
//! startup with the file and offset, and no file is touched. Two cases look alike and are
//! refused on purpose: the sectors of one unsynced multi-record write persisted out of order
//! (never acknowledged) and damage followed by valid records (were); the operator decides with
//! `kefud journal truncate FILE OFFSET`. Damage to the very last batch before the store
//! applied it is indistinguishable from a torn write and is cleared. Every cleared tail is
//! first copied (without its trailing zeros), fsync'd, to `damaged/` in the journal directory
//! as `{segment}.{offset}.{unix_ms}.tail`, for inspection; nothing deletes them.
//!
//! A failed write or fsync at run time latches the writer (`writer.rs`): it is never retried,
//! because after a failed fsync the kernel may have dropped the dirty pages and a retry could
//! report success for data that is gone.
//!
//! # Retention
//! Segments whose records are all checkpointed into the SQLite store (durable in `kefud.db`;
//! the store commits without an fsync, so "applied" is not enough) are deleted at rotation,
//! keeping the newest `retain_segments` of them for inspection and backups.

pub mod appender;
pub mod frame;
pub mod recovery;
pub mod segment;
pub mod writer;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("journal I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal damaged in {} at offset {offset}: {reason}; refusing to start, the file is left as it is", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("the journal was written by a newer kefud: record {lsn} in {} is an operation of kind {kind}, which this kefud ({}) does not know; the store has applied the records before it, and the journal is left as it is. Start the newer kefud again (`kefud-rollback` does so itself when the version it went back to cannot start), or restore a backup taken before the upgrade", path.display(), env!("CARGO_PKG_VERSION"))]
    Newer { path: PathBuf, lsn: u64, kind: u8 },
    #[error("store error while replaying the journal: {0}")]
    Replay(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn corrupt(path: &Path, offset: u64, reason: String) -> Self {
        Error::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason,
        }
    }
}
