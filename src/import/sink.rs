//! Where an import's steps go, and what it tells the person running it.
//!
//! A [`Sink`] either runs the pipeline on the data directory (journal, store, dispatcher;
//! without the network) and hands it steps in batches, or, for `--check`, only counts them.
//! Batches are sent without waiting for each answer (a few stay in flight); at the end the
//! sink waits until everything it sent is durable, then stops the pipeline cleanly. Progress
//! (rows, rate, time left) and bad rows (line and reason) go to stderr as they happen.
//!
//! Invariants: [`Sink::finish`] returns only once every step sent is fsync'd in the journal;
//! any refusal on the way stops the import with the dispatcher's reason; the store never
//! trails what was sent by more than [`STORE_BACKLOG`] records plus one batch window, so memory
//! does not grow with the size of the import.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::app::Core;
use crate::config::Config;
use crate::dispatch::{Command, DispatchError, ImportStep};
use crate::model::Lsn;

/// How an import runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// A contact's messages further apart than this start a new conversation.
    pub gap: Duration,
    /// Read and check everything, write nothing.
    pub check_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            gap: Duration::from_secs(24 * 3600),
            check_only: false,
        }
    }
}

/// What an import did, for the person who ran it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub messages: u64,
    /// Messages an earlier run imported already.
    pub already_imported: u64,
    pub contacts: u64,
    pub conversations_closed: u64,
    pub conversations_open: u64,
    pub canned_replies: u64,
    /// Agents created now (disabled, without a password), by username.
    pub agents_created: Vec<String>,
    /// Rows the source marked deleted, not imported.
    pub deleted_in_source: u64,
    pub bad_rows: u64,
    pub elapsed: Duration,
    pub check_only: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.check_only {
            "would import"
        } else {
            "imported"
        };
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        writeln!(
            f,
            "{verb} {} messages ({:.0}/s) of {} contacts in {:.1} s; {} conversations closed, {} open waiting for a person",
            self.messages,
            self.messages as f64 / secs,
            self.contacts,
            secs,
            self.conversations_closed,
            self.conversations_open
        )?;
        if self.already_imported > 0 {
            writeln!(
                f,
                "{} messages were imported by an earlier run and skipped",
                self.already_imported
            )?;
        }
        if self.deleted_in_source > 0 {
            writeln!(
                f,
                "{} rows deleted in the source were left out",
                self.deleted_in_source
            )?;
        }
        if self.canned_replies > 0 {
            writeln!(f, "{} canned replies", self.canned_replies)?;
        }
        if !self.agents_created.is_empty() {
            writeln!(
                f,
                "{} agents created, disabled until they have a password (kefud agent passwd NAME enables one): {}",
                self.agents_created.len(),
                self.agents_created.join(", ")
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    NotImportable(String),
    #[error(
        "kefud is running on {0}: stop it first (an import needs the data directory to itself)"
    )]
    DaemonRunning(String),
    #[error(transparent)]
    Pipeline(crate::Error),
    #[error("the import stopped: {0}")]
    Refused(DispatchError),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{summary}{bad} rows could not be imported (each is listed above with its line)")]
    BadRows { summary: Box<Summary>, bad: u64 },
}

/// Steps per command: large enough that the dispatcher's per-command work vanishes, small
/// enough that one batch is a small journal write.
const BATCH: usize = 512;
/// Batches sent and not yet answered.
const IN_FLIGHT: usize = 8;
/// Records the store may trail the journal by during an import (tens of MB in the queues
/// between them; the store commits every 10,000 records meanwhile, so it moves).
const STORE_BACKLOG: u64 = 100_000;
/// The store's checkpoint size and page cache during an import (at least).
const BULK_CHECKPOINT_WAL_MIB: u64 = 256;
const BULK_CACHE_MIB: u64 = 32;
/// Bad rows printed one by one; beyond, only counted.
const BAD_ROWS_LISTED: u64 = 100;

/// The pipeline an import writes through, and the runtime its tasks run on.
struct Pipeline {
    runtime: tokio::runtime::Runtime,
    core: Core,
    pending: VecDeque<oneshot::Receiver<Result<Lsn, DispatchError>>>,
    last: Lsn,
}

/// Where steps go, with the counts and the reporting around them.
pub struct Sink {
    pipeline: Option<Pipeline>,
    batch: Vec<ImportStep>,
    pub summary: Summary,
    started: Instant,
    last_progress: Instant,
    /// The source's size and how far it has been read, for "time left".
    total_bytes: u64,
}

impl Sink {
    /// Starts the pipeline on `cfg`'s data directory, or nothing for a check.
    ///
    /// # Errors
    /// [`ImportError::DaemonRunning`] when the data directory is in use, or the pipeline
    /// cannot start.
    pub fn start(cfg: &Config, options: &Options, total_bytes: u64) -> Result<Sink, ImportError> {
        let pipeline = if options.check_only {
            None
        } else {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(ImportError::Runtime)?;
            let mut cfg = cfg.clone();
            // An import writes in bulk and nobody reads meanwhile: the store checkpoints less
            // often, so a page the import changes again and again is written out once per
            // checkpoint rather than many times (the WAL grows to 256 MiB meanwhile), and it
            // keeps more pages in memory (BENCHMARKS.md, import).
            cfg.store.checkpoint_wal_mib =
                cfg.store.checkpoint_wal_mib.max(BULK_CHECKPOINT_WAL_MIB);
            cfg.store.cache_mib = cfg.store.cache_mib.max(BULK_CACHE_MIB);
            // Nobody searches during an import: messages are indexed in bulk when it ends
            // (or, if it is stopped, when kefud next starts).
            cfg.store.loading = crate::store::applier::Loading::Bulk;
            let cfg = Arc::new(cfg);
            let core = runtime.block_on(Core::start(&cfg)).map_err(|e| match e {
                crate::Error::DataDirInUse(dir) => {
                    ImportError::DaemonRunning(dir.display().to_string())
                }
                other => ImportError::Pipeline(other),
            })?;
            Some(Pipeline {
                runtime,
                core,
                pending: VecDeque::new(),
                last: 0,
            })
        };
        let now = Instant::now();
        Ok(Sink {
            pipeline,
            batch: Vec::with_capacity(BATCH),
            summary: Summary {
                check_only: options.check_only,
                ..Summary::default()
            },
            started: now,
            last_progress: now,
            total_bytes,
        })
    }

    /// Queues one step; sends a batch when one is full.
    ///
    /// # Errors
    /// [`ImportError::Refused`] when the pipeline refused an earlier batch.
    pub fn push(&mut self, step: ImportStep) -> Result<(), ImportError> {
        if matches!(step, ImportStep::Message { .. }) {
            self.summary.messages += 1;
        }
        self.batch.push(step);
        if self.batch.len() >= BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<(), ImportError> {
        let steps = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let Some(p) = &mut self.pipeline else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        p.core
            .commands
            .blocking_send(Command::Import(steps, tx))
            .map_err(|_| ImportError::Refused(DispatchError::Unavailable))?;
        p.pending.push_back(rx);
        while p.pending.len() > IN_FLIGHT {
            wait_answer(p)?;
        }
        // The store applies far slower than the journal takes records: wait for it rather
        // than let the records between them pile up in memory.
        let behind = p.last.saturating_sub(STORE_BACKLOG);
        if p.core.store.applied() < behind {
            let mut applied = p.core.store.subscribe();
            let _ = p.runtime.block_on(applied.wait_for(|a| *a >= behind));
        }
        Ok(())
    }

    /// A row the import could not use: listed (the first [`BAD_ROWS_LISTED`]) and counted.
    pub fn bad_row(&mut self, line: u64, what: &str, reason: &str) {
        self.summary.bad_rows += 1;
        if self.summary.bad_rows <= BAD_ROWS_LISTED {
            eprintln!("line {line}: {what}: {reason}; skipped");
        } else if self.summary.bad_rows == BAD_ROWS_LISTED + 1 {
            eprintln!("(more bad rows are only counted)");
        }
    }

    /// Prints progress at most every two seconds: `read` bytes of the source so far.
    pub fn progress(&mut self, stage: &str, read: u64) {
        let now = Instant::now();
        if now.duration_since(self.last_progress) < Duration::from_secs(2) {
            return;
        }
        self.last_progress = now;
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let rate = self.summary.messages as f64 / elapsed.max(1e-3);
        let fraction = read as f64 / self.total_bytes.max(1) as f64;
        let left = if fraction > 0.0 {
            elapsed * (1.0 - fraction) / fraction
        } else {
            0.0
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{stage}: {} messages, {:.0}/s, {:.0}% of the file, about {:.0} s left",
            self.summary.messages,
            rate,
            fraction * 100.0,
            left
        );
    }

    /// Sends what is queued, waits until all of it is durable, stops the pipeline.
    ///
    /// # Errors
    /// [`ImportError::Refused`] or [`ImportError::Pipeline`] if the pipeline failed on the
    /// way; [`ImportError::BadRows`] (after everything else was imported) if rows were
    /// skipped.
    pub fn finish(mut self) -> Result<Summary, ImportError> {
        if !self.batch.is_empty() {
            self.send()?;
        }
        if let Some(mut p) = self.pipeline.take() {
            while !p.pending.is_empty() {
                wait_answer(&mut p)?;
            }
            let Pipeline {
                runtime,
                core,
                last,
                ..
            } = p;
            let mut durable = core.durable.clone();
            let reached = runtime.block_on(durable.wait_for(|d| *d >= last)).is_ok();
            runtime
                .block_on(core.stop())
                .map_err(ImportError::Pipeline)?;
            if !reached {
                return Err(ImportError::Pipeline(crate::Error::JournalLatched));
            }
        }
        self.summary.elapsed = self.started.elapsed();
        if self.summary.bad_rows > 0 {
            let bad = self.summary.bad_rows;
            return Err(ImportError::BadRows {
                summary: Box::new(self.summary),
                bad,
            });
        }
        Ok(self.summary)
    }
}

fn wait_answer(p: &mut Pipeline) -> Result<(), ImportError> {
    let Some(rx) = p.pending.pop_front() else {
        return Ok(());
    };
    match rx.blocking_recv() {
        Ok(Ok(lsn)) => {
            p.last = p.last.max(lsn);
            Ok(())
        }
        Ok(Err(e)) => Err(ImportError::Refused(e)),
        Err(_) => Err(ImportError::Refused(DispatchError::Unavailable)),
    }
}
