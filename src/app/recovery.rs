//! Before the pipeline starts: the data directory's lock (one process per journal), and
//! recovery — the journal verified and whatever the store lacks replayed into it, then
//! checkpointed, so the pipeline starts from a store that has applied the whole journal.

use super::*;

/// Records replayed into the store per transaction at startup.
const REPLAY_CHUNK: usize = 10_000;

/// An exclusive lock on the data directory (`kefud.lock`, flock), held while the pipeline
/// runs: two processes appending to one journal would corrupt it.
pub(crate) struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    pub(crate) fn acquire(dir: &std::path::Path) -> Result<Self> {
        use std::os::fd::AsRawFd;
        let data_dir_error = |source| Error::DataDir {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(data_dir_error)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("kefud.lock"))
            .map_err(data_dir_error)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::DataDirInUse(dir.to_path_buf()));
        }
        Ok(DataDirLock { _file: file })
    }
}

pub(super) struct Recovered {
    pub(super) applier: Applier,
    pub(super) journal: journal::recovery::Recovered,
}

/// Opens the store, recovers the journal and replays into the store what it lacks.
pub(super) fn recover(cfg: &Config) -> Result<Recovered> {
    let journal_dir = cfg.journal_dir();
    std::fs::create_dir_all(&journal_dir).map_err(|source| Error::DataDir {
        path: journal_dir.clone(),
        source,
    })?;
    let conn = store::open(&cfg.db_path())?;
    let mut applier = Applier::new(
        conn,
        cfg.event_channels(),
        cfg.store.cadence(),
        cfg.store.cache_mib,
        cfg.store.loading,
    )?;
    let mut startup = systemd::StartupProgress::default();
    applier.index_search_backlog(|done| {
        startup.report(|| format!("indexing imported messages for search: {done} done"))
    })?;
    let mut chunk: Vec<(u64, Op)> = Vec::with_capacity(REPLAY_CHUNK);
    let applied = applier.applied_lsn();
    let journal = journal::recovery::recover(&journal_dir, applied, |lsn, op| {
        chunk.push((lsn, op));
        if chunk.len() == REPLAY_CHUNK {
            applier
                .apply(chunk.iter().map(|(l, o)| (*l, o)))
                .map_err(|e| journal::Error::Replay(e.to_string()))?;
            chunk.clear();
            startup.report(|| format!("replaying the journal: at record {lsn}"));
        }
        Ok(())
    })?;
    applier.apply(chunk.iter().map(|(l, o)| (*l, o)))?;
    if journal.last_lsn < applier.applied_lsn() {
        return Err(journal::Error::Corrupt {
            path: journal_dir,
            offset: 0,
            reason: format!(
                "the journal ends at LSN {} but the store has applied up to {}: journal files are missing",
                journal.last_lsn,
                applier.applied_lsn()
            ),
        }
        .into());
    }
    // Everything replayed becomes durable in the store, and the WAL starts empty.
    applier.checkpoint_all()?;
    Ok(Recovered { applier, journal })
}
