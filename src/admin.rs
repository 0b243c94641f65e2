//! The administration commands.
//!
//! - `kefud agent ...`: accounts, on the data directory, whether or not the daemon is running
//!   (SQLite's locking serialises them with the daemon).
//! - `kefud apikey add|list|revoke`: keys of the HTTP API channel (works while the daemon runs).
//! - `kefud kb import|export`: the knowledge base. An import is journaled like any change, so
//!   it starts the pipeline (without the network) on the data directory, which needs the
//!   daemon stopped (the data-directory lock says so otherwise); with the daemon running, the
//!   API's `POST /api/v1/kb/import` does the same. Export reads the store and works either way.
//! - `kefud backup DEST` / `kefud restore SRC`: a consistent copy of the data directory while
//!   the daemon runs, and its restore into an empty one (`backup.rs` says why it is consistent).
//! - `kefud rollback-store --since-ms MS`: the store as it was before an upgrade's schema
//!   migrations (`store::undo`), for `kefud-rollback`; takes the data-directory lock.
//! - `kefud journal truncate FILE OFFSET`: the operator's override after recovery refused a
//!   damaged last segment (`journal::recovery::truncate_at`); takes the data-directory lock, so
//!   it needs the daemon stopped.

use std::io::{BufRead, IsTerminal, Write};

use crate::apikeys;
use crate::app::Core;
use crate::auth::{self, AuthError};
use crate::config::Config;
use crate::dispatch::{Command, KbChange, Reply};
use crate::routing::knowledge::{self, Format};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("cannot read the password: {0}")]
    Input(std::io::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the two passwords differ")]
    Mismatch,
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Import {
        path: String,
        source: crate::routing::knowledge::ImportError,
    },
    #[error(transparent)]
    ApiKey(#[from] apikeys::KeyError),
    #[error(transparent)]
    Update(#[from] crate::update::UpdateError),
    #[error("not healthy: {0}")]
    Unhealthy(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("unknown format {0:?}: use jsonl or csv")]
    Format(String),
    #[error(
        "kefud is running on {0}: stop it first, or import through it with POST /api/v1/kb/import"
    )]
    DaemonRunning(String),
    #[error(transparent)]
    Pipeline(crate::Error),
    #[error(transparent)]
    Journal(#[from] crate::journal::Error),
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
}

fn format_named(name: Option<&str>, path: Option<&str>) -> Result<Format, AdminError> {
    let name = name
        .or_else(|| path.and_then(|p| p.rsplit('.').next()))
        .unwrap_or("jsonl");
    Format::parse(name).ok_or_else(|| AdminError::Format(name.to_string()))
}

/// Imports a JSON Lines or CSV file into the knowledge base (format from `format`, else the
/// file's extension). With `replace`, entries the file does not name are removed.
///
/// # Errors
/// [`AdminError`] for an unreadable or invalid file, or a data directory in use.
pub fn kb_import(
    cfg: &Config,
    path: &str,
    format: Option<&str>,
    replace: bool,
) -> Result<String, AdminError> {
    let format = format_named(format, Some(path))?;
    let text = std::fs::read_to_string(path).map_err(|source| AdminError::ReadFile {
        path: path.to_string(),
        source,
    })?;
    let entries = knowledge::parse_import(&text, format).map_err(|source| AdminError::Import {
        path: path.to_string(),
        source,
    })?;
    let (count, examples) = (
        entries.len(),
        entries.iter().map(|e| e.examples.len()).sum::<usize>(),
    );
    let cfg = std::sync::Arc::new(cfg.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AdminError::Runtime)?;
    runtime.block_on(async move {
        let core = Core::start(&cfg).await.map_err(|e| match e {
            crate::Error::DataDirInUse(dir) => AdminError::DaemonRunning(dir.display().to_string()),
            other => AdminError::Pipeline(other),
        })?;
        let delete = if replace {
            let keep: std::collections::HashSet<&str> =
                entries.iter().map(|e| e.intent.as_str()).collect();
            core.kb
                .borrow()
                .entries()
                .filter(|e| !keep.contains(e.intent.as_str()))
                .map(|e| e.intent.clone())
                .collect()
        } else {
            Vec::new()
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = core
            .commands
            .send(Command::KbChange(
                KbChange {
                    put: entries,
                    delete,
                },
                Reply::Once(tx),
            ))
            .await;
        let accepted = match (sent, rx.await) {
            (Ok(()), Ok(Ok(a))) => Some(a),
            _ => None,
        };
        let durable = match &accepted {
            Some(a) => {
                let mut durable = core.durable.clone();
                let reached = durable.wait_for(|d| *d >= a.lsn).await.is_ok();
                reached
            }
            None => false,
        };
        core.stop().await.map_err(AdminError::Pipeline)?;
        if !durable {
            return Err(AdminError::Pipeline(crate::Error::JournalLatched));
        }
        Ok::<_, AdminError>(())
    })?;
    Ok(format!(
        "imported {count} entries with {examples} example questions"
    ))
}

/// Creates an API key for `channel`; the output holds the key, shown this once.
///
/// # Errors
/// [`AdminError`] for a bad channel or name, or an unusable store.
pub fn apikey_add(cfg: &Config, channel: &str, name: &str) -> Result<String, AdminError> {
    let conn = open(cfg)?;
    let (key, record) = apikeys::create(&conn, channel, name)?;
    Ok(format!(
        "API key {} for channel {} (shown once; keep it secret):\n{key}",
        record.id, record.channel
    ))
}

/// # Errors
/// [`AdminError`] if the store cannot be read.
pub fn apikey_list(cfg: &Config) -> Result<String, AdminError> {
    let conn = open(cfg)?;
    let mut out = String::from("ID\tCHANNEL\tNAME\tSTATE\n");
    for k in apikeys::list(&conn)? {
        let state = if k.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        };
        out.push_str(&format!("{}\t{}\t{}\t{state}\n", k.id, k.channel, k.name));
    }
    Ok(out)
}

/// # Errors
/// [`AdminError`] for an unknown or already revoked key.
pub fn apikey_revoke(cfg: &Config, id: i64) -> Result<String, AdminError> {
    let conn = open(cfg)?;
    apikeys::revoke(&conn, id)?;
    Ok(format!("API key {id} revoked"))
}

/// The knowledge base as JSON Lines or CSV (the import format).
///
/// # Errors
/// [`AdminError`] if the store cannot be read or the format is unknown.
pub fn kb_export(cfg: &Config, format: Option<&str>) -> Result<String, AdminError> {
    let format = format_named(format, None)?;
    let conn = open(cfg)?;
    let entries = crate::store::queries::kb_entries(&conn)?;
    Ok(knowledge::export(entries.iter(), format))
}

/// `kefud journal truncate FILE OFFSET`: cuts the last segment where recovery refused, keeping
/// the cut bytes, once the operator accepts losing the records from there on.
///
/// # Errors
/// [`AdminError`] when the daemon runs, the store cannot be read, or the journal refuses the
/// cut (see `journal::recovery::truncate_at`).
pub fn journal_truncate(
    cfg: &Config,
    file: &std::path::Path,
    offset: u64,
) -> Result<String, AdminError> {
    let _lock =
        crate::app::DataDirLock::acquire(&cfg.storage.data_dir).map_err(AdminError::Pipeline)?;
    let applied = crate::store::applied_lsn(&crate::store::open(&cfg.db_path())?)?;
    let t = crate::journal::recovery::truncate_at(&cfg.journal_dir(), file, offset, applied)?;
    Ok(format!(
        "cut {} bytes from {} at offset {offset}: the journal now ends at record {}; the cut \
         bytes are kept in {}",
        t.bytes,
        file.display(),
        t.first_lost_lsn - 1,
        t.kept.display()
    ))
}

/// `kefud rollback-store --since-ms MS`: the store put back as it was before the schema
/// migrations made since an upgrade installed at `since_ms` (`kefud-rollback` runs it before it
/// puts the previous binary back); needs the daemon stopped.
///
/// # Errors
/// [`AdminError`] when the daemon runs, or the journal no longer holds what came after the
/// snapshot (nothing is changed then).
pub fn rollback_store(cfg: &Config, since_ms: u64) -> Result<String, AdminError> {
    let _lock =
        crate::app::DataDirLock::acquire(&cfg.storage.data_dir).map_err(AdminError::Pipeline)?;
    Ok(
        match crate::store::undo::undo(&cfg.db_path(), &cfg.journal_dir(), since_ms)? {
            None => "no schema migration since the upgrade: the store stays as it is".to_string(),
            Some(u) => {
                let mut note = format!(
                    "the store is back at schema {} ({}); the journal's {} records since then \
                     are replayed when kefud starts; carried over from the newer store: {}; every \
                     session ended (agents sign in again); the schema {} store is kept as {}",
                    u.snapshot.schema,
                    u.snapshot.path.display(),
                    u.to_replay,
                    u.carried.join(", "),
                    u.from_schema,
                    u.aside.display()
                );
                if !u.not_carried.is_empty() {
                    note += &format!(
                        "; as they were before the upgrade (their columns changed): {}",
                        u.not_carried.join(", ")
                    );
                }
                note
            }
        },
    )
}

/// `kefud backup DEST`: a backup of the configured data directory, daemon running or not.
///
/// # Errors
/// [`AdminError::Backup`] naming what failed.
pub fn backup(cfg: &Config, dest: &std::path::Path) -> Result<String, AdminError> {
    let m = crate::backup::create(&cfg.storage.data_dir, dest)?;
    Ok(format!(
        "backed up {} into {}: {}",
        cfg.storage.data_dir.display(),
        dest.display(),
        crate::backup::describe(&m)
    ))
}

/// `kefud restore SRC`: the backup in `src`, verified, into the configured (empty) data
/// directory.
///
/// # Errors
/// [`AdminError::Backup`] for a non-empty data directory or a damaged or newer backup.
pub fn restore(cfg: &Config, src: &std::path::Path) -> Result<String, AdminError> {
    let m = crate::backup::restore(src, &cfg.storage.data_dir)?;
    Ok(format!(
        "restored {} into {}: {}; kefud replays the journal beyond the store when it starts",
        src.display(),
        cfg.storage.data_dir.display(),
        crate::backup::describe(&m)
    ))
}

fn open(cfg: &Config) -> Result<rusqlite::Connection, AdminError> {
    std::fs::create_dir_all(&cfg.storage.data_dir).map_err(|source| AdminError::DataDir {
        path: cfg.storage.data_dir.display().to_string(),
        source,
    })?;
    Ok(crate::store::open(&cfg.db_path())?)
}

/// # Errors
/// [`AdminError`] for a bad name or password, a taken name, or an unusable store.
pub fn agent_add(
    cfg: &Config,
    name: &str,
    display_name: Option<&str>,
    admin: bool,
    from_stdin: bool,
) -> Result<String, AdminError> {
    let conn = open(cfg)?;
    let password = read_password(from_stdin)?;
    let agent = auth::add_agent(&conn, name, display_name.unwrap_or(""), &password, admin)?;
    Ok(format!(
        "added agent {} (id {}{})",
        agent.username,
        agent.id,
        if agent.is_admin { ", admin" } else { "" }
    ))
}

/// # Errors
/// [`AdminError`] if the store cannot be read.
pub fn agent_list(cfg: &Config) -> Result<String, AdminError> {
    let conn = open(cfg)?;
    let mut out = String::from("ID\tUSERNAME\tNAME\tROLE\tSTATE\n");
    for a in auth::list_agents(&conn)? {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            a.id,
            a.username,
            a.display_name,
            if a.is_admin { "admin" } else { "agent" },
            if a.disabled { "disabled" } else { "enabled" }
        ));
    }
    Ok(out)
}

/// # Errors
/// [`AdminError`] for an unknown agent, a weak password or an unusable store.
pub fn agent_passwd(cfg: &Config, name: &str, from_stdin: bool) -> Result<String, AdminError> {
    let conn = open(cfg)?;
    let password = read_password(from_stdin)?;
    auth::set_password(&conn, name, &password)?;
    Ok(format!(
        "password of {name} changed; their sessions were signed out"
    ))
}

/// One line from stdin; on a terminal (without `--password-stdin`) asked twice with echo off.
fn read_password(from_stdin: bool) -> Result<String, AdminError> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(AdminError::Input)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = prompt_hidden("Password: ")?;
    let second = prompt_hidden("Again: ")?;
    if first != second {
        return Err(AdminError::Mismatch);
    }
    Ok(first)
}

fn prompt_hidden(prompt: &str) -> Result<String, AdminError> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd and we restore it below.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have_tty = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_tty {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: as above, with a termios derived from the saved one.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if have_tty {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    eprintln!();
    read.map_err(AdminError::Input)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `kefud healthcheck [--timeout-secs N]`: waits until this config's kefud answers `GET
/// /healthz` with `200` and `"status":"ok"` on its listen address (the loopback address for an
/// unspecified one), for the update helper and anyone's monitoring. Plain HTTP/1.0 over a
/// socket: no client library, nothing to go wrong between the check and the daemon.
///
/// # Errors
/// [`AdminError::Unhealthy`] with the last answer (or connection error) once `timeout` passed.
pub fn healthcheck(cfg: &Config, timeout: std::time::Duration) -> Result<String, AdminError> {
    use std::io::{Read as _, Write as _};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
    let listen = cfg.server.listen;
    let addr = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port())
        }
        _ => listen,
    };
    let step = std::time::Duration::from_millis(500);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let answer = (|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&addr, step * 4)?;
            stream.set_read_timeout(Some(step * 4))?;
            stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut text = String::new();
            stream.take(64 * 1024).read_to_string(&mut text)?;
            Ok(text)
        })();
        let last = match answer {
            Ok(text)
                if text.starts_with("HTTP/1.")
                    && text.split(' ').nth(1) == Some("200")
                    && text.contains("\"status\":\"ok\"") =>
            {
                let body = text
                    .split("\r\n\r\n")
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string();
                return Ok(format!("healthy: http://{addr}/healthz: {body}"));
            }
            Ok(text) => text.lines().next().unwrap_or("no answer").to_string(),
            Err(e) => e.to_string(),
        };
        if std::time::Instant::now() >= deadline {
            return Err(AdminError::Unhealthy(format!(
                "http://{addr}/healthz: {last}"
            )));
        }
        std::thread::sleep(step);
    }
}
