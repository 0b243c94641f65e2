//! The daemon's periodic tasks: the once-a-second tick (clock steps, idle timers), the heap
//! trim, the sweep of uploads no message refers to, and scheduled backups.

use super::*;

/// Once a second: looks at the wall clock (a step is journaled) and fires due timers. Once a
/// minute: hands the heap's free memory back to the OS.
pub(super) async fn tick_idle_timeouts(commands: mpsc::Sender<Command>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        // Cancel safety: `tick` and `cancelled` are cancel-safe.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                ticks += 1;
                if ticks % 60 == 0 {
                    tokio::task::spawn_blocking(trim_heap);
                }
                if let Some(step) = crate::clock::observe() {
                    if commands.send(Command::ClockStepped(step)).await.is_err() {
                        return;
                    }
                }
                let timer_ms = crate::clock::timer_ms();
                if commands.send(Command::Tick { timer_ms }).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// glibc keeps freed memory in its arenas, fragmented between live blocks, so after bursts
/// of connections the resident size creeps up (an hour's soak: 4-7 MiB per 10 minutes, with
/// 4-6 MB actually in use). `malloc_trim` returns the free pages; it takes a few milliseconds
/// on a blocking thread, once a minute.
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Every few minutes, deletes uploads no message refers to.
pub(super) async fn sweep_uploads(state: AppState, stop: CancellationToken) {
    loop {
        let after = Duration::from_secs(state.cfg().uploads.orphan_after_secs);
        // Often enough that an orphan outlives its allowance by at most half of it.
        let every = (after / 2).clamp(Duration::from_secs(1), Duration::from_secs(300));
        // Cancel safety: `sleep` and `cancelled` are cancel-safe.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {
                match http::uploads::sweep_orphan_uploads(&state, after).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(files = n, "deleted uploads no message refers to"),
                    Err(e) => tracing::warn!(error = ?e, "sweeping orphan uploads failed"),
                }
            }
        }
    }
}

/// How often the backup task looks at `[backup]` again (so a reload applies within it).
const BACKUP_RECHECK: Duration = Duration::from_secs(60);

/// Takes a backup into `backup.directory` every `backup.interval_secs` (counted from the
/// newest one there, so restarts do not postpone it), pruning to `backup.keep`. A failure is
/// logged and retried at the next check.
pub(super) async fn scheduled_backups(state: AppState, stop: CancellationToken) {
    loop {
        let cfg = state.cfg();
        let wait = if cfg.backup.directory.as_os_str().is_empty() {
            BACKUP_RECHECK
        } else {
            let dir = cfg.backup.directory.clone();
            let newest =
                tokio::task::spawn_blocking(move || crate::backup::schedule::newest(&dir)).await;
            match newest {
                Ok(Ok(newest)) => crate::backup::schedule::due_in(
                    newest,
                    crate::model::now_ms(),
                    Duration::from_secs(cfg.backup.interval_secs),
                ),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "scheduled backup: cannot list the backups");
                    BACKUP_RECHECK
                }
                Err(_) => BACKUP_RECHECK,
            }
        };
        if wait.is_zero() {
            let (data_dir, dir, keep) = (
                cfg.storage.data_dir.clone(),
                cfg.backup.directory.clone(),
                cfg.backup.keep,
            );
            let done = tokio::task::spawn_blocking(move || {
                crate::backup::schedule::run_once(&data_dir, &dir, keep, crate::model::now_ms())
            })
            .await;
            match done {
                Ok(Ok((path, m))) => tracing::info!(
                    path = %path.display(),
                    store_lsn = m.store_applied_lsn,
                    journal_last_lsn = m.journal_last_lsn,
                    "scheduled backup taken"
                ),
                Ok(Err(e)) => tracing::warn!(error = %e, "scheduled backup failed"),
                Err(_) => tracing::warn!("scheduled backup: the worker panicked"),
            }
        }
        // Cancel safety: `sleep` and `cancelled` are cancel-safe. A backup in progress is not
        // interrupted by shutdown (it runs on a blocking thread to its end, read-only).
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait.clamp(Duration::from_secs(1), BACKUP_RECHECK)) => {}
        }
    }
}
