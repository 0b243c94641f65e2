//! `kefud agent ...`: account administration on the data directory, whether or not the daemon
//! is running (SQLite's locking serialises it with the daemon).

use std::io::{BufRead, IsTerminal, Write};

use crate::auth::{self, AuthError};
use crate::config::Config;

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
