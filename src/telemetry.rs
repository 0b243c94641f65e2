//! Logging: to journald when started by systemd (`$JOURNAL_STREAM` set), else to stderr.
//!
//! The filter is `log.level` from the config, overridden by `RUST_LOG`; a config reload swaps
//! it through [`LogFilter`] (unless `RUST_LOG` is set, which then stays in force).
//!
//! Under journald every tracing field becomes a journal field of the same name, upper-cased
//! and without a prefix, so the events below carry a stable `MESSAGE_ID` (the catalog
//! convention: 128 random bits in hex) that `journalctl -u kefud MESSAGE_ID=...` selects.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// `MESSAGE_ID`s of the events a shop owner or a monitor looks for.
pub mod message_id {
    /// kefud is ready: recovered, listening (fields: `addr`, `startup_ms`).
    pub const READY: &str = "700227b483a0a1dc06a8893a6629ea9b";
    /// A graceful shutdown started.
    pub const STOPPING: &str = "e68d55ead9580de71b5ba99f89b905c6";
    /// A config reload was applied (field `needs_restart` lists keys kept until a restart).
    pub const RELOADED: &str = "ec6bcbed4fe60e195482e22a7b62f13c";
    /// A config reload was refused; the running configuration stays (field `error`).
    pub const RELOAD_REFUSED: &str = "0adfb7da558f605115be7533c9b6006b";
    /// kefud stopped on an error (journal latched, store failed, ...).
    pub const FAILED: &str = "3513f58e4aa67f5c7f019d2133703423";
}

/// Swaps the log filter at run time.
pub struct LogFilter {
    handle: reload::Handle<EnvFilter, Registry>,
    env_override: bool,
}

impl LogFilter {
    /// Applies `level` unless `RUST_LOG` overrides the config.
    ///
    /// # Errors
    /// The filter's parse error (the config's validation has normally caught it before).
    pub fn set(&self, level: &str) -> Result<(), String> {
        if self.env_override {
            return Ok(());
        }
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())
    }
}

pub fn init(level: &str) -> LogFilter {
    let from_env = EnvFilter::try_from_default_env().ok();
    let env_override = from_env.is_some();
    let filter = from_env
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let log_filter = LogFilter {
        handle,
        env_override,
    };
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        match tracing_journald::layer() {
            Ok(journald) => {
                registry
                    .with(
                        journald
                            .with_syslog_identifier("kefud".into())
                            .with_field_prefix(None),
                    )
                    .init();
                return log_filter;
            }
            Err(e) => eprintln!("kefud: journald unavailable ({e}); logging to stderr"),
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(ansi),
        )
        .init();
    log_filter
}
