//! Configuration reload on SIGHUP (`systemctl reload kefud`).
//!
//! The `--config` file is read again and checked as a whole. A file that does not read, parse
//! or validate is refused: the running configuration stays, untouched, and the refusal is
//! logged and shown in systemd's STATUS. An accepted file takes effect without dropping a
//! connection: limits apply to connections opened from then on, the login limit, token
//! lifetime, resolved-conversation timeout, bot threshold and keywords, summary settings,
//! shutdown grace and log filter at once. Keys that
//! only take effect at startup ([`Config::reloadable_from`]) keep their running values and are
//! named in a warning. systemd is told `RELOADING=1` before and `READY=1` after, either way.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dispatch::Command;
use crate::login::LoginGuard;
use crate::systemd;
use crate::telemetry::{message_id, LogFilter};

/// Where a reload reads from, and the log filter it may swap.
pub struct Reloader {
    /// The `--config` file; `None` when kefud runs on its embedded defaults.
    pub path: Option<PathBuf>,
    pub log: LogFilter,
}

/// What a reload changes in the running daemon.
pub struct Targets {
    pub config: watch::Sender<Arc<Config>>,
    pub login: Arc<LoginGuard>,
    pub commands: mpsc::Sender<Command>,
}

/// Reloads on every SIGHUP until `shutdown`.
pub async fn run(
    reloader: Reloader,
    mut hangups: Signal,
    targets: Targets,
    shutdown: CancellationToken,
) {
    loop {
        // Cancel safety: `Signal::recv` and `cancelled` are cancel-safe.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hangups.recv() => {
                if got.is_none() {
                    return;
                }
                reload(&reloader, &targets).await;
            }
        }
    }
}

async fn reload(reloader: &Reloader, targets: &Targets) {
    systemd::notify_reloading();
    let loaded = match &reloader.path {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => Err("kefud runs on its embedded defaults (no --config): nothing to reload".into()),
    };
    let new = match loaded {
        Ok(new) => new,
        Err(error) => {
            tracing::error!(
                message_id = message_id::RELOAD_REFUSED,
                %error,
                "config reload refused; the running configuration stays"
            );
            systemd::notify_ready(&format!("reload refused: {error}"));
            return;
        }
    };
    let running = Arc::clone(&targets.config.borrow());
    let (applied, needs_restart) = new.reloadable_from(&running);
    targets
        .login
        .limiter
        .set_per_minute(applied.auth.login_failures_per_minute);
    let idle_ms = applied.conversations.resolved_idle_after_secs as i64 * 1000;
    // Only fails when the dispatcher has stopped, i.e. during shutdown.
    let _ = targets
        .commands
        .send(Command::SetResolvedIdleAfter { ms: idle_ms })
        .await;
    let _ = targets
        .commands
        .send(Command::SetRouting {
            bot: applied.routing.bot(),
            auto_assign: applied.routing.auto_assign,
        })
        .await;
    if let Err(error) = reloader.log.set(&applied.log.level) {
        tracing::warn!(%error, "log.level not applied");
    }
    targets.config.send_replace(Arc::new(applied));
    let status = if needs_restart.is_empty() {
        "config reloaded".to_string()
    } else {
        format!(
            "config reloaded; restart to apply {}",
            needs_restart.join(", ")
        )
    };
    tracing::info!(
        message_id = message_id::RELOADED,
        needs_restart = needs_restart.join(","),
        "{status}"
    );
    systemd::notify_ready(&status);
}
