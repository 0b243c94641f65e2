//! How far the store has got with the journal: shared by the applier, which advances it, and
//! by everyone who reads the store or retires journal segments.
//!
//! Two marks, both LSNs:
//! - `applied`: committed to SQLite and visible to this process's readers. Not necessarily
//!   durable: the applier commits with `synchronous=NORMAL`, so a power cut can take back what
//!   it committed after its last checkpoint (the journal replays it at the next start).
//! - `checkpointed`: every record at or below it is in `kefud.db` and fsync'd. Journal
//!   retention follows this mark, never `applied`.
//!
//! Invariants: `checkpointed <= applied`; both only grow. A reader that needs a record in the
//! store asks for it ([`Progress::reach`]) and the applier commits at once instead of at the
//! end of its interval, so reads see their own writes without waiting for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::model::Lsn;

pub struct Progress {
    applied: watch::Sender<Lsn>,
    /// The same as `applied`, for readers on hot paths (no lock).
    applied_now: AtomicU64,
    /// Shared with the journal writer, which reads it for retention.
    checkpointed: Arc<AtomicU64>,
    /// The highest LSN someone waits to read; the applier commits once it holds it.
    wanted: AtomicU64,
    wake: Notify,
    pub counters: Counters,
}

/// Work the applier did, for `/metrics` and the benchmarks.
#[derive(Default)]
pub struct Counters {
    pub commits: AtomicU64,
    pub checkpoints: AtomicU64,
    /// Pages SQLite wrote out (to its WAL, or to the database during a checkpoint).
    pub pages_written: AtomicU64,
}

impl Progress {
    /// A store that has applied up to `applied`; nothing is known to be checkpointed until
    /// the applier's first checkpoint.
    pub fn new(applied: Lsn) -> Arc<Self> {
        Arc::new(Progress {
            applied: watch::Sender::new(applied),
            applied_now: AtomicU64::new(applied),
            checkpointed: Arc::new(AtomicU64::new(0)),
            wanted: AtomicU64::new(0),
            wake: Notify::new(),
            counters: Counters::default(),
        })
    }

    pub fn applied(&self) -> Lsn {
        self.applied_now.load(Ordering::Acquire)
    }

    pub fn checkpointed(&self) -> Lsn {
        self.checkpointed.load(Ordering::Acquire)
    }

    /// The checkpointed mark itself, for the journal writer (which does not know the store).
    pub fn checkpointed_mark(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.checkpointed)
    }

    /// A receiver that sees every change of `applied`.
    pub fn subscribe(&self) -> watch::Receiver<Lsn> {
        self.applied.subscribe()
    }

    /// Asks the applier to commit as soon as it holds `lsn`, rather than at its next interval.
    pub fn want(&self, lsn: Lsn) {
        if lsn > self.applied() {
            self.wanted.fetch_max(lsn, Ordering::AcqRel);
            self.wake.notify_one();
        }
    }

    /// Waits until the store has applied `lsn`, asking for it first. False if that takes
    /// longer than `within` or the applier stopped.
    pub async fn reach(&self, lsn: Lsn, within: Duration) -> bool {
        if self.applied() >= lsn {
            return true;
        }
        let mut rx = self.subscribe();
        self.want(lsn);
        let reached = async move { rx.wait_for(|a| *a >= lsn).await.is_ok() };
        matches!(tokio::time::timeout(within, reached).await, Ok(true))
    }

    /// The LSN readers wait for (0: none).
    pub(super) fn wanted(&self) -> Lsn {
        self.wanted.load(Ordering::Acquire)
    }

    /// Resolves when someone asks for a record (possibly one already applied).
    pub(super) async fn requested(&self) {
        self.wake.notified().await;
    }

    pub(super) fn set_applied(&self, lsn: Lsn) {
        self.applied_now.store(lsn, Ordering::Release);
        self.applied.send_replace(lsn);
    }

    pub(super) fn set_checkpointed(&self, lsn: Lsn) {
        debug_assert!(lsn <= self.applied(), "checkpointed beyond applied");
        self.checkpointed.fetch_max(lsn, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reach_asks_for_the_record_and_returns_once_it_is_applied() {
        let progress = Progress::new(5);
        assert!(progress.reach(5, Duration::from_millis(1)).await);
        let waiter = {
            let p = Arc::clone(&progress);
            tokio::spawn(async move { p.reach(9, Duration::from_secs(10)).await })
        };
        progress.requested().await;
        assert_eq!(progress.wanted(), 9);
        progress.set_applied(8);
        assert!(!waiter.is_finished());
        progress.set_applied(9);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn a_record_that_never_comes_times_out() {
        let progress = Progress::new(1);
        assert!(!progress.reach(2, Duration::from_millis(20)).await);
        assert_eq!(progress.wanted(), 2);
    }

    #[test]
    fn wanting_what_is_applied_asks_nothing() {
        let progress = Progress::new(7);
        progress.want(7);
        assert_eq!(progress.wanted(), 0);
        assert_eq!(progress.checkpointed(), 0);
        progress.set_checkpointed(7);
        progress.set_checkpointed(3);
        assert_eq!(progress.checkpointed(), 7, "marks only grow");
    }
}
