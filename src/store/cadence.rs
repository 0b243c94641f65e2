//! When the applier commits and checkpoints: the decisions, apart from SQLite, so they are
//! unit-tested with made-up clocks.
//!
//! A transaction opens with the first record after a commit. It is committed when the first
//! of these holds:
//! - it has been open `commit_interval` (how stale the store may be for a reader that does not
//!   ask, and how much a power cut makes the journal replay);
//! - it holds `max_records` records (how much one commit may hold);
//! - it holds a record someone waits for (a reader asked for it, or the record made a row the
//!   outbox sends) and `min_gap` has passed since the last commit, so a burst of requests
//!   costs one commit, not one each;
//! - the daemon stops.
//!
//! A checkpoint (which makes every commit durable in `kefud.db`) runs once the oldest commit
//! it would cover is `checkpoint_interval` old, or `checkpoint_pages` pages were written to
//! the WAL since the last one, or the daemon stops. One that a reader held back is tried
//! again after `retry`.
//!
//! Invariant: nothing is scheduled while nothing waits to be committed or checkpointed, so an
//! idle store does no work and writes nothing.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct CadenceConfig {
    pub commit_interval: Duration,
    pub max_records: usize,
    pub min_gap: Duration,
    pub checkpoint_interval: Duration,
    pub checkpoint_pages: u64,
    pub retry: Duration,
}

#[derive(Debug)]
pub struct Cadence {
    cfg: CadenceConfig,
    /// When the open transaction took its first record; `None`: no transaction is open.
    open_since: Option<Instant>,
    records: usize,
    /// The open transaction holds a record someone waits for.
    urgent: bool,
    last_commit: Option<Instant>,
    /// When the oldest commit not yet checkpointed was made.
    uncheckpointed_since: Option<Instant>,
    pages_since_checkpoint: u64,
    /// A checkpoint a reader held back: when to try again.
    retry_at: Option<Instant>,
}

impl Cadence {
    pub fn new(cfg: CadenceConfig) -> Self {
        Cadence {
            cfg,
            open_since: None,
            records: 0,
            urgent: false,
            last_commit: None,
            uncheckpointed_since: None,
            pages_since_checkpoint: 0,
            retry_at: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open_since.is_some()
    }

    /// `records` more records were applied into the open transaction (opening it if none
    /// was); `urgent` if one of them is waited for.
    pub fn staged(&mut self, now: Instant, records: usize, urgent: bool) {
        self.open_since.get_or_insert(now);
        self.records += records;
        self.urgent |= urgent;
    }

    /// A reader waits for a record the open transaction holds.
    pub fn waited_for(&mut self) {
        if self.is_open() {
            self.urgent = true;
        }
    }

    pub fn commit_due(&self, now: Instant) -> bool {
        let Some(since) = self.open_since else {
            return false;
        };
        now >= since + self.cfg.commit_interval
            || self.records >= self.cfg.max_records
            || (self.urgent && self.gap_passed(now))
    }

    /// The open transaction was committed; SQLite wrote `pages` pages for it.
    pub fn committed(&mut self, now: Instant, pages: u64) {
        self.open_since = None;
        self.records = 0;
        self.urgent = false;
        self.last_commit = Some(now);
        self.uncheckpointed_since.get_or_insert(now);
        self.pages_since_checkpoint += pages;
    }

    pub fn checkpoint_due(&self, now: Instant) -> bool {
        let Some(since) = self.uncheckpointed_since else {
            return false;
        };
        if let Some(at) = self.retry_at {
            return now >= at;
        }
        now >= since + self.cfg.checkpoint_interval
            || self.pages_since_checkpoint >= self.cfg.checkpoint_pages
    }

    /// A checkpoint ran. `complete`: it covered every commit (else a reader held it back
    /// and it is tried again later).
    pub fn checkpointed(&mut self, now: Instant, complete: bool) {
        if complete {
            self.uncheckpointed_since = None;
            self.pages_since_checkpoint = 0;
            self.retry_at = None;
        } else {
            self.retry_at = Some(now + self.cfg.retry);
        }
    }

    /// The next moment a decision may change without a new record or request; `None`: nothing
    /// is pending.
    pub fn next_wake(&self) -> Option<Instant> {
        let commit = self.open_since.map(|since| {
            let by_age = since + self.cfg.commit_interval;
            match self.last_commit {
                Some(last) if self.urgent => by_age.min(last + self.cfg.min_gap),
                _ => by_age,
            }
        });
        let checkpoint = self.uncheckpointed_since.map(|since| {
            self.retry_at
                .unwrap_or(since + self.cfg.checkpoint_interval)
        });
        match (commit, checkpoint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn gap_passed(&self, now: Instant) -> bool {
        self.last_commit
            .map_or(true, |last| now >= last + self.cfg.min_gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cadence() -> Cadence {
        Cadence::new(CadenceConfig {
            commit_interval: Duration::from_secs(5),
            max_records: 100,
            min_gap: Duration::from_millis(20),
            checkpoint_interval: Duration::from_secs(60),
            checkpoint_pages: 1000,
            retry: Duration::from_secs(1),
        })
    }

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn an_idle_store_schedules_nothing() {
        let t0 = Instant::now();
        let c = cadence();
        assert!(!c.commit_due(t0));
        assert!(!c.checkpoint_due(ms(t0, 3_600_000)));
        assert_eq!(c.next_wake(), None);
    }

    #[test]
    fn a_transaction_is_committed_after_the_interval_from_its_first_record() {
        let t0 = Instant::now();
        let mut c = cadence();
        c.staged(t0, 1, false);
        c.staged(ms(t0, 4000), 1, false);
        assert_eq!(c.next_wake(), Some(ms(t0, 5000)));
        assert!(!c.commit_due(ms(t0, 4999)));
        assert!(c.commit_due(ms(t0, 5000)));
        c.committed(ms(t0, 5000), 10);
        assert!(!c.commit_due(ms(t0, 9000)));
        assert_eq!(
            c.next_wake(),
            Some(ms(t0, 65_000)),
            "then only the checkpoint waits"
        );
    }

    #[test]
    fn a_full_transaction_is_committed_at_once() {
        let t0 = Instant::now();
        let mut c = cadence();
        c.staged(t0, 99, false);
        assert!(!c.commit_due(t0));
        c.staged(t0, 1, false);
        assert!(c.commit_due(t0));
    }

    #[test]
    fn a_waited_for_record_is_committed_at_once_but_a_burst_shares_one_commit() {
        let t0 = Instant::now();
        let mut c = cadence();
        c.staged(t0, 1, true);
        assert!(c.commit_due(t0), "the first commit needs no gap");
        c.committed(t0, 5);
        c.staged(ms(t0, 5), 1, false);
        c.waited_for();
        assert!(!c.commit_due(ms(t0, 10)));
        assert_eq!(c.next_wake(), Some(ms(t0, 20)));
        assert!(c.commit_due(ms(t0, 20)));
    }

    #[test]
    fn waiting_with_nothing_open_opens_nothing() {
        let t0 = Instant::now();
        let mut c = cadence();
        c.waited_for();
        assert!(!c.commit_due(t0));
        assert_eq!(c.next_wake(), None);
    }

    #[test]
    fn a_checkpoint_follows_the_oldest_commit_or_the_pages_written() {
        let t0 = Instant::now();
        let mut c = cadence();
        c.staged(t0, 1, false);
        c.committed(ms(t0, 5000), 10);
        c.staged(ms(t0, 30_000), 1, false);
        c.committed(ms(t0, 35_000), 10);
        assert!(!c.checkpoint_due(ms(t0, 64_999)));
        assert!(c.checkpoint_due(ms(t0, 65_000)));
        c.checkpointed(ms(t0, 65_000), true);
        assert!(!c.checkpoint_due(ms(t0, 200_000)));

        c.staged(ms(t0, 70_000), 1, false);
        c.committed(ms(t0, 70_000), 1000);
        assert!(
            c.checkpoint_due(ms(t0, 70_000)),
            "the WAL grew past its bound"
        );
    }

    #[test]
    fn a_checkpoint_held_back_by_a_reader_is_retried() {
        let t0 = Instant::now();
        let mut c = cadence();
        c.staged(t0, 1, false);
        c.committed(t0, 1000);
        assert!(c.checkpoint_due(t0));
        c.checkpointed(t0, false);
        assert!(!c.checkpoint_due(ms(t0, 999)));
        assert_eq!(c.next_wake(), Some(ms(t0, 1000)));
        assert!(c.checkpoint_due(ms(t0, 1000)));
        c.checkpointed(ms(t0, 1000), true);
        assert_eq!(c.next_wake(), None);
    }
}
