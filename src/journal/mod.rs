//! The write-ahead journal: the daemon's source of truth and its durability promise.
//!
//! # Format
//! The journal directory holds segment files named `{first_lsn:020}.wal`. Each starts with a
//! 32-byte header (`segment.rs`) followed by frames (`frame.rs`):
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
//!   durable LSN published by the writer has reached its record, i.e. after `fdatasync`.
//! - Acks go out in commit order: each connection acks its messages in the order it sent them,
//!   and the durable LSN only grows.
//! - Processing is idempotent on the sender's `client_id`: a resend is answered with the first
//!   message id and journals nothing.
//! - Outbound messages are journaled first, then sent: the journal is the outbox.
//!
//! # Media assumptions
//! `fdatasync` returning means the data written before it survives power loss (true for ext4
//! on SD cards and SSDs that honour flushes). A write that was not followed by a successful
//! fdatasync may be lost or persist partly, in any order of pages: so only the region after
//! the last fsync — the tail of the last segment — can be torn.
//!
//! # Recovery policy (`recovery.rs`)
//! Truncate a torn tail of the last segment; refuse to start, naming file and offset, on
//! damage anywhere else. A failed write or fsync at run time latches the writer (`writer.rs`):
//! it is never retried, because after a failed fsync the kernel may have dropped the dirty
//! pages and a retry could report success for data that is gone.
//!
//! # Retention
//! Segments whose records are all applied to the SQLite store are deleted at rotation, keeping
//! the newest `retain_segments` of them for inspection and backups.

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
    #[error("journal damaged in {} at offset {offset}: {reason}; refusing to start (move the file aside only if you accept losing its records)", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
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
