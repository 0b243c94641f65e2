//! The daemon's periodic tasks: the once-a-second tick (clock steps, idle timers), the heap
//! trim, and the sweep of uploads no message refers to.

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
