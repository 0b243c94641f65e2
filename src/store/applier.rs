//! The applier: the one owner of the store's write connection, on its own thread.
//!
//! It holds committed journal batches in memory, in LSN order, and applies them in one short
//! SQLite transaction when [`Cadence`] says so, many batches per commit; the write lock is
//! held only for that burst, so the few other writers (logins, settings) wait milliseconds,
//! not the commit interval. It commits with
//! `synchronous=NORMAL` (no fsync): the journal already holds every record durably, and the
//! store's own durability comes from its checkpoints, which sync the WAL and then the database.
//! A power cut can therefore take back commits made since the last checkpoint; the journal
//! still holds them (its retention follows the checkpointed mark) and the next start replays
//! them.
//!
//! Invariants:
//! - Only fsync'd journal records reach it, so "the store applied it" implies "it was synced"
//!   (journal recovery relies on that).
//! - `meta.applied_lsn` is written in the same transaction as the rows it covers; `applied` is
//!   published only after that transaction commits.
//! - `checkpointed` is published only after a checkpoint that backfilled the whole WAL. This
//!   thread makes every commit the applied mark counts, none during its own checkpoint, so
//!   such a checkpoint covers everything applied.
//! - Only this connection runs checkpoints (every connection has `wal_autocheckpoint=0`), and
//!   only this connection commits without a sync: the accounts tables, written elsewhere and
//!   journaled nowhere, keep `synchronous=FULL`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{ffi, params, Connection};
use tokio::sync::mpsc;

use super::apply::{apply_op, read_without_asking, Prepared};
use super::cadence::{Cadence, CadenceConfig};
use super::progress::Progress;
use super::search_index;
use super::Error;
use crate::model::Lsn;
use crate::op::{Entry, Op};

/// How the applier loads records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Loading {
    /// The daemon: each message enters the search index in the transaction that stores it,
    /// and this thread runs at a lower priority than those that acknowledge messages.
    #[default]
    Live,
    /// An import, where nobody searches or waits for an acknowledgement: messages enter the
    /// search index in bulk when it ends (`search_index`), and this thread, the import's
    /// bottleneck, keeps its normal priority.
    Bulk,
}

pub struct Applier {
    conn: Connection,
    /// Batches received and not yet applied, in LSN order.
    pending: Vec<Vec<Entry>>,
    /// The last LSN received (the applied LSN when nothing is pending).
    staged_lsn: Lsn,
    applied_lsn: Lsn,
    progress: Arc<Progress>,
    cadence: Cadence,
    /// Channels with a webhook: their conversation events get outbox rows.
    event_channels: Vec<String>,
    /// When messages enter the search index, and the first one not in it (`search_index`).
    loading: Loading,
    search_backlog: Option<Lsn>,
}

impl Applier {
    /// Takes the write connection of a migrated store, with `cache_mib` of page cache (a
    /// transaction that holds seconds of messages stays in memory instead of spilling pages to
    /// the WAL before it commits).
    ///
    /// # Errors
    /// [`Error::Sqlite`] if the store's pragmas or applied LSN cannot be read or set.
    pub fn new(
        conn: Connection,
        event_channels: Vec<String>,
        cadence: CadenceConfig,
        cache_mib: u64,
        loading: Loading,
    ) -> Result<Self, Error> {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -((cache_mib * 1024) as i64))?;
        let applied_lsn = super::applied_lsn(&conn)?;
        Ok(Applier {
            search_backlog: search_index::backlog_from(&conn)?,
            conn,
            pending: Vec::new(),
            staged_lsn: applied_lsn,
            applied_lsn,
            progress: Progress::new(applied_lsn),
            cadence: Cadence::new(cadence),
            event_channels,
            loading,
        })
    }

    /// Indexes the messages a bulk-loading applier left out of the search index (an import
    /// stopped part way, or this bulk load's own), checkpointing after each chunk so the WAL
    /// stays bounded; `progress` hears the messages indexed so far after each chunk (startup
    /// tells systemd it is still moving). A live applier does this before it applies anything,
    /// by itself if its owner has not.
    ///
    /// # Errors
    /// [`Error::Sqlite`]; the chunks committed stay indexed.
    pub fn index_search_backlog(&mut self, mut progress: impl FnMut(u64)) -> Result<(), Error> {
        if self.search_backlog.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let indexed = search_index::catch_up(&mut self.conn, self.applied_lsn, |conn, done| {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            progress(done);
            Ok(())
        })?;
        self.search_backlog = None;
        tracing::info!(
            indexed,
            secs = started.elapsed().as_secs_f64(),
            "store: search index complete"
        );
        Ok(())
    }

    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    pub fn applied_lsn(&self) -> Lsn {
        self.applied_lsn
    }

    /// Applies records (in LSN order) in one transaction and commits it: recovery's replay,
    /// and every commit of the running applier. Records at or below the applied LSN are
    /// skipped.
    ///
    /// Returns the pages SQLite wrote for it.
    ///
    /// # Errors
    /// [`Error::Sqlite`]; the transaction is rolled back and the applied LSN is unchanged.
    pub fn apply<'a>(
        &mut self,
        records: impl IntoIterator<Item = (Lsn, &'a Op)>,
    ) -> Result<u64, Error> {
        if self.loading == Loading::Live {
            self.index_search_backlog(|_| {})?;
        }
        let tx = self.conn.transaction()?;
        let mut last = self.applied_lsn;
        let mut backlog_started = None;
        {
            let mut prepared = Prepared::new(&tx, self.loading);
            for (lsn, op) in records {
                if lsn > last {
                    apply_op(&mut prepared, lsn, op, &self.event_channels)?;
                    last = lsn;
                }
            }
            if let (None, Some(first)) = (self.search_backlog, prepared.first_unindexed) {
                search_index::start_backlog(&tx, first)?;
                backlog_started = Some(first);
            }
        }
        if last == self.applied_lsn {
            return Ok(0);
        }
        tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'applied_lsn'")?
            .execute(params![last as i64])?;
        tx.commit()?;
        self.search_backlog = self.search_backlog.or(backlog_started);
        self.applied_lsn = last;
        self.staged_lsn = self.staged_lsn.max(last);
        let pages = self.pages_written();
        let counters = &self.progress.counters;
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters.pages_written.fetch_add(pages, Ordering::Relaxed);
        self.progress.set_applied(last);
        Ok(pages)
    }

    /// Makes everything applied durable in `kefud.db` and empties the WAL (after recovery,
    /// and when the daemon stops).
    ///
    /// # Errors
    /// [`Error::Sqlite`], or [`Error::Invalid`] if a reader kept the WAL from being emptied.
    pub fn checkpoint_all(&mut self) -> Result<(), Error> {
        if !self.checkpoint("TRUNCATE")? {
            return Err(Error::Invalid(
                "a reader kept the WAL from being checkpointed".into(),
            ));
        }
        Ok(())
    }

    /// The thread body: apply batches until the sender closes, then commit and checkpoint.
    /// An SQLite failure is fatal for the store (the journal still holds everything; a restart
    /// replays it).
    ///
    /// # Errors
    /// The first [`Error`] that stopped it.
    pub fn run(mut self, rx: mpsc::Receiver<Vec<Entry>>) -> Result<(), Error> {
        if self.loading == Loading::Live {
            lower_this_threads_priority();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the applier's timer: {e}")))?;
        runtime.block_on(self.serve(rx))
    }

    async fn serve(&mut self, mut rx: mpsc::Receiver<Vec<Entry>>) -> Result<(), Error> {
        let progress = Arc::clone(&self.progress);
        loop {
            let wake = self.cadence.next_wake();
            // Cancel safety: `recv` and `notified` lose nothing when another branch wins (a
            // `notify_one` without a waiter is kept for the next `notified`).
            tokio::select! {
                biased;
                batch = rx.recv() => match batch {
                    Some(batch) => self.stage(batch),
                    None => break,
                },
                () = progress.requested() => {
                    if self.waited_for() {
                        self.cadence.waited_for();
                    }
                }
                () = sleep_until(wake), if wake.is_some() => {}
            }
            let now = Instant::now();
            if self.cadence.commit_due(now) {
                self.commit()?;
            }
            if self.cadence.checkpoint_due(now) {
                // A checkpoint covers what is committed: commit what is pending first.
                if self.cadence.is_open() {
                    self.commit()?;
                }
                self.checkpoint("PASSIVE")?;
            }
        }
        self.commit()?;
        self.index_search_backlog(|_| {})?;
        self.checkpoint_all()
    }

    /// Holds a batch until the next commit.
    fn stage(&mut self, batch: Vec<Entry>) {
        let (mut count, mut last, mut read_unasked) = (0, self.staged_lsn, false);
        for e in batch.iter().filter(|e| e.lsn > self.staged_lsn) {
            count += 1;
            last = e.lsn;
            read_unasked |= read_without_asking(&e.op, &self.event_channels);
        }
        if count == 0 {
            return;
        }
        self.staged_lsn = last;
        self.pending.push(batch);
        let urgent = read_unasked || self.waited_for();
        self.cadence.staged(Instant::now(), count, urgent);
    }

    /// Someone waits for a record that is pending.
    fn waited_for(&self) -> bool {
        let wanted = self.progress.wanted();
        wanted > self.applied_lsn && wanted <= self.staged_lsn
    }

    /// Applies and commits what is pending.
    fn commit(&mut self) -> Result<(), Error> {
        if !self.cadence.is_open() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let pages = self.apply(pending.iter().flatten().map(|e| (e.lsn, &e.op)))?;
        self.cadence.committed(Instant::now(), pages);
        Ok(())
    }

    /// Runs a checkpoint; true if it backfilled the whole WAL, and then publishes everything
    /// applied as checkpointed.
    fn checkpoint(&mut self, mode: &str) -> Result<bool, Error> {
        let (busy, log, done): (i64, i64, i64) =
            self.conn
                .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        let complete = busy == 0 && log == done;
        self.cadence.checkpointed(Instant::now(), complete);
        self.progress
            .counters
            .checkpoints
            .fetch_add(1, Ordering::Relaxed);
        if complete {
            self.progress.set_checkpointed(self.applied_lsn);
            // Nothing is pending: give the page cache back until the next message.
            self.conn.execute_batch("PRAGMA shrink_memory")?;
        } else {
            tracing::debug!(
                log,
                done,
                "store: checkpoint held back by a reader; retrying"
            );
        }
        Ok(complete)
    }

    /// Pages SQLite wrote for this connection since the last call.
    fn pages_written(&self) -> u64 {
        let (mut current, mut highest) = (0, 0);
        // SAFETY: the handle belongs to `self.conn`, which outlives the call; the status call
        // only reads (and resets) a counter of that connection.
        let rc = unsafe {
            ffi::sqlite3_db_status(
                self.conn.handle(),
                ffi::SQLITE_DBSTATUS_CACHE_WRITE,
                &mut current,
                &mut highest,
                1,
            )
        };
        if rc == ffi::SQLITE_OK {
            current.max(0) as u64
        } else {
            0
        }
    }
}

/// The store is background work: on a board with few cores, a long commit must not delay the
/// threads that acknowledge messages. Nice 10 for this thread only (Linux applies
/// `setpriority` to one thread); a refusal is harmless.
fn lower_this_threads_priority() {
    // SAFETY: gettid and setpriority have no memory-safety preconditions.
    let refused = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0
    };
    if refused {
        tracing::debug!("store: could not lower the applier's priority");
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{bounded_id, Identity, Sender};
    use crate::op::MessageAdded;
    use std::time::Duration;

    fn cadence(commit_interval: Duration) -> CadenceConfig {
        CadenceConfig {
            commit_interval,
            max_records: 1000,
            min_gap: Duration::from_millis(1),
            checkpoint_interval: Duration::from_secs(3600),
            checkpoint_pages: 1 << 20,
            retry: Duration::from_secs(1),
        }
    }

    fn entries(from: Lsn, to: Lsn) -> Vec<Entry> {
        let identity = Identity {
            channel: bounded_id("web").unwrap(),
            external_id: bounded_id("v1").unwrap(),
        };
        (from..=to)
            .map(|lsn| Entry {
                lsn,
                op: if lsn == 1 {
                    Op::ContactCreated {
                        contact: 1,
                        identity: identity.clone(),
                        at_ms: 0,
                    }
                } else if lsn == 2 {
                    Op::ConversationOpened {
                        conversation: 1,
                        contact: 1,
                        at_ms: 0,
                    }
                } else {
                    Op::MessageAdded(MessageAdded {
                        conversation: 1,
                        contact: 1,
                        sender: Sender::Visitor,
                        agent: None,
                        client_id: None,
                        text: format!("message {lsn}"),
                        at_ms: lsn as i64,
                        attachment: None,
                        via: Some(identity.clone()),
                    })
                },
                audience: None,
                glue: false,
            })
            .collect()
    }

    fn store() -> (tempfile::TempDir, Applier) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("kefud.db")).unwrap();
        let applier = Applier::new(
            conn,
            Vec::new(),
            cadence(Duration::from_secs(3600)),
            8,
            Loading::Live,
        )
        .unwrap();
        (dir, applier)
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        let conn = crate::store::connect(&dir.path().join("kefud.db")).unwrap();
        conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn batches_wait_in_memory_until_a_reader_asks_for_them_and_block_no_writer() {
        let (dir, applier) = store();
        let progress = applier.progress();
        let (tx, rx) = mpsc::channel(8);
        let thread = std::thread::spawn(move || applier.run(rx));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tx.send(entries(1, 5)).await.unwrap();
            tx.send(entries(6, 9)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(
                progress.applied(),
                0,
                "an hour's interval: nothing committed yet"
            );
            assert_eq!(
                count(&dir),
                0,
                "other connections do not see the open transaction"
            );
            assert!(progress.reach(9, Duration::from_secs(5)).await);
            assert_eq!(count(&dir), 7);
            assert_eq!(
                progress.checkpointed(),
                0,
                "committed, not yet checkpointed"
            );
        });
        drop(tx);
        thread.join().unwrap().unwrap();
        assert_eq!(
            progress.checkpointed(),
            9,
            "stopping checkpoints everything"
        );
        assert_eq!(progress.counters.commits.load(Ordering::Relaxed), 1);
        let wal = std::fs::metadata(dir.path().join("kefud.db-wal")).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the WAL is emptied when the applier stops");
    }

    fn found(dir: &tempfile::TempDir, text: &str) -> i64 {
        let conn = crate::store::connect(&dir.path().join("kefud.db")).unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH ?1",
            [format!("\"{text}\"")],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_deferred_search_index_is_built_at_the_end_or_at_the_next_start() {
        let (dir, mut applier) = store();
        applier
            .apply(entries(1, 4).iter().map(|e| (e.lsn, &e.op)))
            .unwrap();
        let conn = crate::store::connect(&dir.path().join("kefud.db")).unwrap();
        let mut deferring = Applier::new(
            conn,
            Vec::new(),
            cadence(Duration::from_secs(3600)),
            8,
            Loading::Bulk,
        )
        .unwrap();
        for (from, to) in [(5, 7), (8, 9)] {
            deferring
                .apply(entries(from, to).iter().map(|e| (e.lsn, &e.op)))
                .unwrap();
        }
        assert_eq!(found(&dir, "message 4"), 1, "indexed live");
        assert_eq!(found(&dir, "message 8"), 0, "deferred");
        assert_eq!(deferring.search_backlog, Some(5));
        // Stopped here (an import killed): the next live applier indexes the backlog
        // before it applies anything, reporting progress to its owner if asked first.
        drop(deferring);
        let conn = crate::store::connect(&dir.path().join("kefud.db")).unwrap();
        let mut live = Applier::new(
            conn,
            Vec::new(),
            cadence(Duration::from_secs(3600)),
            8,
            Loading::Live,
        )
        .unwrap();
        let mut reported = Vec::new();
        live.index_search_backlog(|done| reported.push(done))
            .unwrap();
        assert_eq!(reported, [5], "messages 5 to 9");
        assert_eq!(live.search_backlog, None);
        for n in 3..=9 {
            assert_eq!(found(&dir, &format!("message {n}")), 1, "message {n}");
        }
        let conn = crate::store::connect(&dir.path().join("kefud.db")).unwrap();
        assert_eq!(search_index::backlog_from(&conn).unwrap(), None);
        let hash_size: i64 = conn
            .query_row(
                "SELECT v FROM messages_fts_config WHERE k = 'hashsize'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hash_size, 8 << 20, "the live buffer size stays set");
        // A bulk-loading applier that runs to its end indexes its own backlog.
        let (tx, rx) = mpsc::channel(8);
        let conn = crate::store::connect(&dir.path().join("kefud.db")).unwrap();
        let deferring = Applier::new(
            conn,
            Vec::new(),
            cadence(Duration::from_secs(3600)),
            8,
            Loading::Bulk,
        )
        .unwrap();
        let thread = std::thread::spawn(move || deferring.run(rx));
        tx.blocking_send(entries(10, 12)).unwrap();
        drop(tx);
        thread.join().unwrap().unwrap();
        assert_eq!(found(&dir, "message 12"), 1);
    }

    #[test]
    fn a_reader_held_checkpoint_is_not_counted_as_durable() {
        let (dir, mut applier) = store();
        applier
            .apply(entries(1, 3).iter().map(|e| (e.lsn, &e.op)))
            .unwrap();
        let reader = crate::store::connect(&dir.path().join("kefud.db")).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        applier
            .apply(entries(4, 6).iter().map(|e| (e.lsn, &e.op)))
            .unwrap();
        assert!(!applier.checkpoint("PASSIVE").unwrap());
        assert_eq!(applier.progress().checkpointed(), 0);
        reader.execute_batch("COMMIT").unwrap();
        assert!(applier.checkpoint("PASSIVE").unwrap());
        assert_eq!(applier.progress().checkpointed(), 6);
    }
}
