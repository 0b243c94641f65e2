//! systemd integration: `READY=1`, `STATUS=`, `RELOADING=1`, `STOPPING=1`,
//! `EXTEND_TIMEOUT_USEC=` while a long startup makes progress, and a watchdog gated by health.
//!
//! Without `$NOTIFY_SOCKET` (not under systemd, or in CI) every call is a no-op. The watchdog
//! pings at half of `WATCHDOG_USEC`, and only while the health check passes, so a stuck journal
//! writer gets the daemon restarted instead of merely logged.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub fn notify_ready(status: &str) {
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// How far each sign of progress during startup pushes systemd's start timeout.
const STARTUP_EXTENSION: Duration = Duration::from_secs(90);

/// Signs of progress are sent at most this often.
const STARTUP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Startup that may outlast `TimeoutStartSec=` (a long journal replay; a search index finished
/// after an import was stopped): while it makes progress, systemd is told so
/// (`EXTEND_TIMEOUT_USEC=` and `STATUS=`, at most every 10 s), so a slow but moving start is
/// not killed and restarted; a stuck one still is, 90 s after its last progress.
#[derive(Default)]
pub struct StartupProgress {
    last: Option<Instant>,
}

impl StartupProgress {
    /// One step done; `status` says where startup is (made only when sent).
    pub fn report(&mut self, status: impl FnOnce() -> String) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < STARTUP_REPORT_EVERY)
        {
            return;
        }
        self.last = Some(now);
        let status = status();
        tracing::info!(status, "startup");
        notify(&[
            sd_notify::NotifyState::ExtendTimeoutUsec(STARTUP_EXTENSION.as_micros() as u32),
            sd_notify::NotifyState::Status(&status),
        ]);
    }
}

/// Before a config reload; `READY=1` ([`notify_ready`]) ends it. `MONOTONIC_USEC` goes with it,
/// as systemd's reload protocol asks.
pub fn notify_reloading() {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[
            sd_notify::NotifyState::Reloading,
            now,
            sd_notify::NotifyState::Status("reloading the configuration"),
        ]),
        Err(_) => notify(&[sd_notify::NotifyState::Reloading]),
    }
}

/// `STOPPING=1`, with the failure that caused it, if any, as `STATUS=`.
pub fn notify_stopping(failure: Option<&str>) {
    let status = failure.map_or_else(|| "stopping".to_string(), |f| format!("failed: {f}"));
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status(&status),
    ]);
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// The watchdog interval systemd asked for, halved; `None` when the watchdog is off.
///
/// As libsystemd's `sd_watchdog_enabled`: `WATCHDOG_USEC` turns it on, and `WATCHDOG_PID`,
/// when present, must name this process (the sd-notify crate also insists on its presence).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC")
        .ok()?
        .parse()
        .ok()
        .filter(|u| *u > 0)?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// Pings the watchdog every `interval` while `healthy()` holds, until `stop` is cancelled.
pub async fn run_watchdog(interval: Duration, healthy: impl Fn() -> bool, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    loop {
        // Cancel safety: `tick` and `cancelled` are both cancel-safe.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if healthy() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                } else {
                    tracing::error!("health check failed; withholding the watchdog ping");
                }
            }
        }
    }
}
