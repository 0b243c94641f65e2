//! The single journal writer thread: group commit, rotation, retention, the I/O-error latch.
//!
//! Ownership: this thread alone owns the open segment file. Appenders hand it [`Entry`]s over a
//! bounded channel (a full channel slows them down: backpressure). The thread takes whatever
//! has queued while the previous write ran, encodes it into one reused buffer and writes it
//! with one synchronous, sector-aligned write (`appender.rs`); only once that returned does it
//! publish the new durable LSN (the ack point) and pass the batch, in LSN order, to the
//! post-commit consumer.
//!
//! Invariants:
//! - The published durable LSN never exceeds what has been fsync'd.
//! - A failed write or fsync (ENOSPC, EIO, EROFS after an ext4 `errors=remount-ro`) is never
//!   retried: the writer latches with the reason ([`Health::failure`], shown by `/healthz`),
//!   publishes no durable LSN again (so nothing more is acknowledged), and cancels the daemon's
//!   fatal token so it exits non-zero; recovery sorts out the tail.
//! - Segments are rotated only between batches, so a segment may exceed `segment_bytes` by at
//!   most one batch.
//! - A segment is deleted only when every record in it is checkpointed into the store (durable
//!   in `kefud.db`, not merely committed: the store commits without an fsync) and
//!   `retain_segments` newer such segments exist, and, while an upgrade can still be undone,
//!   it holds no record after the pre-migration snapshot (`KeepForRollback`; at most 64
//!   segments are kept for that).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::appender::Appender;
use super::frame;
use super::segment::{self, SegmentFile};
use super::Error;
use crate::model::{now_ms, Lsn};
use crate::op::Entry;

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub segment_bytes: u64,
    pub max_batch_bytes: usize,
    pub retain_segments: usize,
    /// While an upgrade can be undone: every record after the pre-migration snapshot is kept.
    pub keep_for_rollback: Option<KeepForRollback>,
}

/// Records after `lsn` (a pre-migration snapshot's position) are kept until `until_ms`, so the
/// previous kefud can replay them onto that snapshot (`store::undo`).
#[derive(Debug, Clone, Copy)]
pub struct KeepForRollback {
    pub lsn: Lsn,
    pub until_ms: u64,
}

/// Closed segments kept for a rollback at most (about 1 GiB at the default segment size): an
/// import of millions of messages after an upgrade must not fill the card.
const ROLLBACK_MAX_SEGMENTS: usize = 64;

/// How many of the oldest closed segments to delete, given the last LSN of each closed segment
/// (oldest first): those the store has checkpointed beyond the newest `retain` such segments,
/// and none holding a record after `keep_after` unless more than [`ROLLBACK_MAX_SEGMENTS`]
/// would be kept for it.
fn segments_to_retire(
    closed_ends: &[Lsn],
    checkpointed: Lsn,
    retain: usize,
    keep_after: Option<Lsn>,
) -> usize {
    let checkpointed_closed = closed_ends
        .iter()
        .filter(|&&end| end <= checkpointed)
        .count();
    let below_floor = keep_after.map_or(usize::MAX, |floor| {
        let below = closed_ends.iter().take_while(|&&end| end <= floor).count();
        below.max(closed_ends.len().saturating_sub(ROLLBACK_MAX_SEGMENTS))
    });
    checkpointed_closed.saturating_sub(retain).min(below_floor)
}

/// What the watchdog asks of the writer: not latched, and not stuck inside one batch.
#[derive(Debug, Default)]
pub struct Health {
    /// Set once, when the writer latches: why.
    failure: OnceLock<String>,
    /// When the batch in progress was picked up (ms since epoch); 0 while waiting for work.
    busy_since_ms: AtomicI64,
    /// Records committed since start, for status lines and tests.
    committed: AtomicU64,
    /// Group commits (one write and one fdatasync each), bytes written, and every fsync or
    /// fdatasync the writer made (rotation and retirement included): the load tool reports
    /// them per message.
    batches: AtomicU64,
    bytes: AtomicU64,
    fsyncs: AtomicU64,
}

impl Health {
    pub fn is_healthy(&self, stall_limit: Duration) -> bool {
        if self.is_latched() {
            return false;
        }
        let since = self.busy_since_ms.load(Ordering::Acquire);
        since == 0 || now_ms() - since < stall_limit.as_millis() as i64
    }

    pub fn is_latched(&self) -> bool {
        self.failure.get().is_some()
    }

    /// Why the writer latched, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }
}

pub struct Writer {
    dir: PathBuf,
    cfg: WriterConfig,
    /// Segments on disk, oldest first; the last one is open in `appender`.
    segments: VecDeque<SegmentFile>,
    appender: Appender,
    /// Reused across batches so steady-state encoding allocates nothing.
    buf: Vec<u8>,
    durable: watch::Sender<Lsn>,
    committed_tx: mpsc::Sender<Vec<Entry>>,
    /// The store's checkpointed LSN, read for retention.
    checkpointed: Arc<AtomicU64>,
    health: Arc<Health>,
    fatal: CancellationToken,
}

/// What a failed journal write or fsync most likely means, for the operator. Pure.
pub fn diagnose(e: &Error) -> &'static str {
    let Error::Io { source, .. } = e else {
        return "journal write failed";
    };
    match source.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => "the disk is full",
        Some(libc::EROFS) => {
            "the data directory's file system is read-only (remounted after errors, as ext4 \
             errors=remount-ro does: see dmesg, fsck the card)"
        }
        Some(libc::EIO) => "I/O error: the card or disk is failing (see dmesg)",
        _ => "journal write or fsync failed",
    }
}

/// Whether the file system holding `path` is mounted read-only now: SQLite reports such a
/// failure only as a "disk I/O error", so the store's failure is checked against this.
pub fn file_system_read_only(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statvfs on a NUL-terminated path into a zeroed struct it fills.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(c_path.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0
    }
}

impl Writer {
    /// Opens the journal for appending after recovery: appends to the last segment (laid out
    /// as `layout` says, its records ending at `tail_len`) if it is sealed, or creates one
    /// starting at `last_lsn + 1`; retires the segments `checkpointed` covers.
    ///
    /// # Errors
    /// [`Error::Io`] if the segment cannot be opened or created.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        dir: PathBuf,
        cfg: WriterConfig,
        segments: Vec<SegmentFile>,
        layout: segment::Layout,
        tail_len: u64,
        last_lsn: Lsn,
        committed_tx: mpsc::Sender<Vec<Entry>>,
        checkpointed: Arc<AtomicU64>,
        fatal: CancellationToken,
    ) -> Result<(Self, watch::Receiver<Lsn>, Arc<Health>), Error> {
        let mut segments: VecDeque<SegmentFile> = segments.into();
        let resumed = match segments.back() {
            Some(last) => Appender::resume(&last.path, layout, tail_len)
                .map_err(|e| Error::io(&last.path, e))?,
            None => None,
        };
        // Nothing to resume (a first start, a version 1 or unsealed segment, records ending
        // off the alignment): a new segment. One without records is replaced under its own name.
        let appender = match resumed {
            Some(appender) => appender,
            None => {
                let first = last_lsn + 1;
                if segments.back().is_some_and(|s| s.first_lsn == first) {
                    segments.pop_back();
                }
                let appender = Appender::create(&dir, first).map_err(|e| Error::io(&dir, e))?;
                segments.push_back(SegmentFile {
                    first_lsn: first,
                    path: appender.path().to_path_buf(),
                });
                appender
            }
        };
        let (durable, durable_rx) = watch::channel(last_lsn);
        let health = Arc::new(Health::default());
        let mut writer = Writer {
            dir,
            buf: Vec::with_capacity(cfg.max_batch_bytes + 4096),
            cfg,
            segments,
            appender,
            durable,
            committed_tx,
            checkpointed,
            health: Arc::clone(&health),
            fatal,
        };
        // Recovery checkpointed the store: what earlier runs kept can go now.
        writer.retire();
        Ok((writer, durable_rx, health))
    }

    /// The thread body. Returns when every appender has dropped its sender (clean shutdown:
    /// everything received was already fsync'd) or after latching on an I/O error.
    pub fn run(mut self, mut rx: mpsc::Receiver<Entry>) {
        let mut batch: Vec<Entry> = Vec::with_capacity(1024);
        loop {
            self.health.busy_since_ms.store(0, Ordering::Release);
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            self.health
                .busy_since_ms
                .store(now_ms().max(1), Ordering::Release);
            let mut estimate = first.op_size_estimate();
            batch.push(first);
            while estimate < self.cfg.max_batch_bytes {
                match rx.try_recv() {
                    Ok(e) => {
                        estimate += e.op_size_estimate();
                        batch.push(e);
                    }
                    Err(_) => break,
                }
            }
            // Never between a record and the one it is glued to (sent right after it): the
            // batch is written whole or, torn, dropped whole by recovery (it is sealed).
            while batch.last().is_some_and(|e| e.glue) {
                match rx.blocking_recv() {
                    Some(e) => batch.push(e),
                    None => break,
                }
            }
            if let Err(e) = self.commit(&batch) {
                let cause = diagnose(&e);
                tracing::error!(error = %e, cause, "journal: write or fsync failed; acknowledging nothing more, latching closed, daemon will exit");
                // Only this thread sets it, once, just before returning.
                let _ = self.health.failure.set(format!("{cause}: {e}"));
                self.fatal.cancel();
                return;
            }
            let next = Vec::with_capacity(batch.capacity().min(4096));
            if self
                .committed_tx
                .blocking_send(std::mem::replace(&mut batch, next))
                .is_err()
            {
                tracing::debug!("journal: post-commit consumer gone");
            }
        }
        tracing::debug!(durable = *self.durable.borrow(), "journal: writer stopped");
    }

    fn commit(&mut self, batch: &[Entry]) -> Result<(), Error> {
        if self.appender.position() >= self.cfg.segment_bytes {
            self.rotate(batch[0].lsn)?;
        }
        let segment_id = self
            .segments
            .back()
            .expect("invariant: the writer always has an open segment")
            .first_lsn;
        self.buf.clear();
        for e in batch {
            frame::encode_with(&mut self.buf, segment_id, e.lsn, e.op.kind(), |b| {
                e.op.encode(b)
            });
        }
        let last = batch
            .last()
            .expect("invariant: batches are never empty")
            .lsn;
        let written = self
            .appender
            .append(&mut self.buf, segment_id, last + 1)
            .map_err(|e| Error::io(self.appender.path(), e))?;
        self.durable.send_replace(last);
        self.health
            .committed
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.health.batches.fetch_add(1, Ordering::Relaxed);
        self.health.bytes.fetch_add(written, Ordering::Relaxed);
        // The write is synchronous (O_DSYNC): it is the batch's sync.
        self.health.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn rotate(&mut self, first_lsn: Lsn) -> Result<(), Error> {
        self.appender
            .sync_all()
            .map_err(|e| Error::io(self.appender.path(), e))?;
        self.appender =
            Appender::create(&self.dir, first_lsn).map_err(|e| Error::io(&self.dir, e))?;
        // The old segment's fsync, the new one's and the directory's.
        self.health.fsyncs.fetch_add(3, Ordering::Relaxed);
        self.segments.push_back(SegmentFile {
            first_lsn,
            path: self.dir.join(segment::file_name(first_lsn)),
        });
        self.retire();
        Ok(())
    }

    /// Deletes checkpointed segments beyond the retention. A failure here loses nothing (the
    /// file is merely kept), so it is logged, not latched.
    fn retire(&mut self) {
        let closed_ends: Vec<Lsn> = self
            .segments
            .iter()
            .skip(1)
            .map(|next| next.first_lsn - 1)
            .collect();
        let keep_after = self
            .cfg
            .keep_for_rollback
            .filter(|k| (now_ms() as u64) < k.until_ms)
            .map(|k| k.lsn);
        let excess = segments_to_retire(
            &closed_ends,
            self.checkpointed.load(Ordering::Acquire),
            self.cfg.retain_segments,
            keep_after,
        );
        if excess == 0 {
            return;
        }
        for _ in 0..excess {
            let seg = self
                .segments
                .pop_front()
                .expect("invariant: excess < segment count");
            match std::fs::remove_file(&seg.path) {
                Ok(()) => {
                    tracing::info!(file = %seg.path.display(), "journal: retired checkpointed segment")
                }
                Err(e) => {
                    tracing::warn!(file = %seg.path.display(), error = %e, "journal: could not retire segment")
                }
            }
        }
        self.health.fsyncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = segment::sync_dir(&self.dir) {
            tracing::warn!(error = %e, "journal: directory fsync after retirement failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn retirement_keeps_the_retention_and_what_a_rollback_needs() {
        let ends = [100, 200, 300, 400];
        assert_eq!(segments_to_retire(&ends, 400, 2, None), 2);
        assert_eq!(
            segments_to_retire(&ends, 250, 0, None),
            2,
            "only what is checkpointed"
        );
        assert_eq!(segments_to_retire(&ends, 400, 0, Some(150)), 1);
        assert_eq!(
            segments_to_retire(&ends, 400, 0, Some(99)),
            0,
            "the first holds 100"
        );
        assert_eq!(segments_to_retire(&ends, 400, 1, Some(1_000)), 3);
        let many: Vec<Lsn> = (1..=ROLLBACK_MAX_SEGMENTS as u64 + 3)
            .map(|i| i * 100)
            .collect();
        assert_eq!(
            segments_to_retire(&many, u64::MAX, 0, Some(0)),
            3,
            "at most ROLLBACK_MAX_SEGMENTS are kept for a rollback"
        );
    }

    #[test]
    fn failures_are_named_for_the_operator() {
        let io = |errno| Error::io(Path::new("x.wal"), std::io::Error::from_raw_os_error(errno));
        assert!(diagnose(&io(libc::EROFS)).contains("read-only"));
        assert!(diagnose(&io(libc::ENOSPC)).contains("full"));
        assert!(diagnose(&io(libc::EIO)).contains("failing"));
        assert_eq!(diagnose(&io(libc::EBADF)), "journal write or fsync failed");
    }
}
