//! Agent accounts, passwords and login tokens (what guards the login itself is `login.rs`).
//!
//! Accounts live directly in the store (not the journal): the CLI administers them whether or
//! not the daemon runs, through SQLite's own locking. Passwords are hashed with Argon2id;
//! tokens are 256 random bits handed out once and stored only as their SHA-256, with an expiry.
//! A disabled agent's tokens stop working at once.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{now_ms, AgentId};

pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("username {0:?} is taken")]
    UsernameTaken(String),
    #[error("no agent named {0:?}")]
    NoSuchAgent(String),
    #[error("password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("username must be 1-64 letters, digits, '.', '_' or '-'")]
    BadUsername,
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("setup is done: an agent exists already")]
    SetupDone,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Agent {
    pub id: AgentId,
    pub username: String,
    pub display_name: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
}

/// Argon2id with 12 MiB and 3 passes (an OWASP-recommended setting) — affordable on a Pi.
fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(12 * 1024, 3, 1, None)
            .expect("invariant: constant Argon2 parameters are valid"),
    )
}

/// # Errors
/// [`AuthError::WeakPassword`] or a hashing failure.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::WeakPassword);
    }
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?
        .to_string())
}

fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

const AGENT_COLUMNS: &str = "id, username, display_name, is_admin, disabled, created_at";

fn agent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Agent> {
    Ok(Agent {
        id: r.get::<_, i64>(0)? as u64,
        username: r.get(1)?,
        display_name: r.get(2)?,
        is_admin: r.get(3)?,
        disabled: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// # Errors
/// [`AuthError`] for a bad username, weak password, taken name or store failure.
pub fn add_agent(
    conn: &Connection,
    username: &str,
    display_name: &str,
    password: &str,
    is_admin: bool,
) -> Result<Agent, AuthError> {
    if !valid_username(username) {
        return Err(AuthError::BadUsername);
    }
    let hash = hash_password(password)?;
    let display = if display_name.trim().is_empty() {
        username
    } else {
        display_name.trim()
    };
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO agents (username, display_name, password_hash, is_admin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![username, display, hash, is_admin, now_ms()],
    )?;
    if inserted == 0 {
        return Err(AuthError::UsernameTaken(username.into()));
    }
    agent_by_name(conn, username)?.ok_or_else(|| AuthError::NoSuchAgent(username.into()))
}

/// # Errors
/// [`AuthError::Store`].
pub fn agent_by_name(conn: &Connection, username: &str) -> Result<Option<Agent>, AuthError> {
    Ok(conn
        .query_row(
            &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE username = ?1"),
            params![username],
            agent_row,
        )
        .optional()?)
}

/// # Errors
/// [`AuthError::Store`].
pub fn agent_by_id(conn: &Connection, id: AgentId) -> Result<Option<Agent>, AuthError> {
    Ok(conn
        .query_row(
            &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1"),
            params![id as i64],
            agent_row,
        )
        .optional()?)
}

/// # Errors
/// [`AuthError::Store`].
pub fn list_agents(conn: &Connection) -> Result<Vec<Agent>, AuthError> {
    let mut stmt = conn.prepare(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))?;
    let rows = stmt.query_map([], agent_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Creates the first agent, an admin, only while there is no agent at all (the console's
/// first-run page). The check and the insert are one immediate transaction, so two browsers
/// racing through setup cannot both create an admin.
///
/// # Errors
/// [`AuthError::SetupDone`] once any agent exists; otherwise as [`add_agent`].
pub fn first_admin(
    conn: &Connection,
    username: &str,
    display_name: &str,
    password: &str,
) -> Result<Agent, AuthError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let agents: i64 = tx.query_row("SELECT COUNT(*) FROM agents", [], |r| r.get(0))?;
    if agents > 0 {
        return Err(AuthError::SetupDone);
    }
    let agent = add_agent(&tx, username, display_name, password, true)?;
    tx.commit()?;
    Ok(agent)
}

/// Sets a new password for agent `id` and revokes their tokens.
///
/// # Errors
/// [`AuthError`] for an unknown agent, a weak password or a store failure.
pub fn set_password_by_id(conn: &Connection, id: AgentId, password: &str) -> Result<(), AuthError> {
    let agent = agent_by_id(conn, id)?.ok_or_else(|| AuthError::NoSuchAgent(id.to_string()))?;
    set_password(conn, &agent.username, password)
}

/// Changes an agent's routing settings and flags; `None` leaves a value as it is.
///
/// # Errors
/// [`AuthError`] for an unknown agent or a store failure.
pub fn update_agent(
    conn: &Connection,
    id: AgentId,
    teams: Option<&[String]>,
    capacity: Option<u32>,
    disabled: Option<bool>,
    is_admin: Option<bool>,
) -> Result<(), AuthError> {
    let changed = conn.execute(
        "UPDATE agents SET teams = COALESCE(?2, teams), capacity = COALESCE(?3, capacity),
         disabled = COALESCE(?4, disabled), is_admin = COALESCE(?5, is_admin) WHERE id = ?1",
        params![
            id as i64,
            teams.map(|t| t.join(",")),
            capacity,
            disabled,
            is_admin
        ],
    )?;
    if changed == 0 {
        return Err(AuthError::NoSuchAgent(id.to_string()));
    }
    if disabled == Some(true) {
        conn.execute("DELETE FROM tokens WHERE agent_id = ?1", params![id as i64])?;
    }
    Ok(())
}

/// Sets a new password and revokes the agent's tokens.
///
/// # Errors
/// [`AuthError`] for an unknown agent, a weak password or a store failure.
pub fn set_password(conn: &Connection, username: &str, password: &str) -> Result<(), AuthError> {
    let agent =
        agent_by_name(conn, username)?.ok_or_else(|| AuthError::NoSuchAgent(username.into()))?;
    let hash = hash_password(password)?;
    // An imported agent was disabled only for want of a password: its first one enables it.
    conn.execute(
        "UPDATE agents SET disabled = CASE WHEN password_hash = ?3 THEN 0 ELSE disabled END,
         password_hash = ?2 WHERE id = ?1",
        params![agent.id as i64, hash, NO_PASSWORD],
    )?;
    conn.execute(
        "DELETE FROM tokens WHERE agent_id = ?1",
        params![agent.id as i64],
    )?;
    Ok(())
}

/// The password hash of an agent brought in by an import: no password matches it.
const NO_PASSWORD: &str = "!imported";

/// An agent another system had (`kefud import`): created disabled and without a password
/// (the other system's hashes are not kept), enabled by the first password set for it. One
/// that exists already is left as it is. Returns its id and whether it was created.
///
/// # Errors
/// [`AuthError::BadUsername`] for a name kefud does not accept, or a store failure.
pub fn import_agent(
    conn: &Connection,
    username: &str,
    display_name: &str,
    created_at: i64,
) -> Result<(AgentId, bool), AuthError> {
    if !valid_username(username) {
        return Err(AuthError::BadUsername);
    }
    let display = if display_name.trim().is_empty() {
        username
    } else {
        display_name.trim()
    };
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO agents (username, display_name, password_hash, disabled, created_at)
         VALUES (?1, ?2, ?3, 1, ?4)",
        params![username, display, NO_PASSWORD, created_at],
    )?;
    let agent =
        agent_by_name(conn, username)?.ok_or_else(|| AuthError::NoSuchAgent(username.into()))?;
    Ok((agent.id, inserted == 1))
}

/// Checks a password and issues a token valid for `ttl`.
///
/// # Errors
/// [`AuthError::InvalidCredentials`] for an unknown name, a wrong password or a disabled
/// agent (indistinguishable on purpose), or a store failure.
pub fn login(
    conn: &Connection,
    username: &str,
    password: &str,
    ttl: Duration,
) -> Result<(String, Agent), AuthError> {
    let row: Option<(String, Agent)> = conn
        .query_row(
            &format!("SELECT password_hash, {AGENT_COLUMNS} FROM agents WHERE username = ?1"),
            params![username],
            |r| {
                let hash: String = r.get(0)?;
                Ok((
                    hash,
                    Agent {
                        id: r.get::<_, i64>(1)? as u64,
                        username: r.get(2)?,
                        display_name: r.get(3)?,
                        is_admin: r.get(4)?,
                        disabled: r.get(5)?,
                        created_at: r.get(6)?,
                    },
                ))
            },
        )
        .optional()?;
    let Some((hash, agent)) = row else {
        // Spend the same time as a real check so timing does not reveal which names exist.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| hash_password("timing-equaliser").unwrap_or_default());
        let _ = verify_password(dummy, password);
        return Err(AuthError::InvalidCredentials);
    };
    if !verify_password(&hash, password) || agent.disabled {
        return Err(AuthError::InvalidCredentials);
    }
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw).map_err(|e| AuthError::Hash(e.to_string()))?;
    let token = hex(&raw);
    let now = now_ms();
    conn.execute("DELETE FROM tokens WHERE expires_at < ?1", params![now])?;
    conn.execute(
        "INSERT INTO tokens (hash, agent_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            token_hash(&token).as_slice(),
            agent.id as i64,
            now,
            now + ttl.as_millis() as i64
        ],
    )?;
    Ok((token, agent))
}

/// The agent a token belongs to, if it is known, unexpired and the agent is enabled.
///
/// # Errors
/// [`AuthError::Store`].
pub fn authenticate(conn: &Connection, token: &str) -> Result<Option<Agent>, AuthError> {
    if token.len() != 64 {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {} FROM tokens t JOIN agents a ON a.id = t.agent_id
         WHERE t.hash = ?1 AND t.expires_at > ?2 AND a.disabled = 0",
        AGENT_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![token_hash(token).as_slice(), now_ms()], agent_row)
        .optional()?)
}

/// # Errors
/// [`AuthError::Store`].
pub fn logout(conn: &Connection, token: &str) -> Result<(), AuthError> {
    conn.execute(
        "DELETE FROM tokens WHERE hash = ?1",
        params![token_hash(token).as_slice()],
    )?;
    Ok(())
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn, None).unwrap();
        conn
    }

    #[test]
    fn add_login_authenticate_logout() {
        let conn = db();
        let agent = add_agent(&conn, "li", "Li Na", "correct horse", true).unwrap();
        assert!(agent.is_admin);
        assert!(matches!(
            add_agent(&conn, "LI", "", "whatever12", false),
            Err(AuthError::UsernameTaken(_))
        ));
        assert!(matches!(
            login(&conn, "li", "wrong password", Duration::from_secs(60)),
            Err(AuthError::InvalidCredentials)
        ));
        assert!(matches!(
            login(&conn, "nobody", "correct horse", Duration::from_secs(60)),
            Err(AuthError::InvalidCredentials)
        ));
        let (token, who) = login(&conn, "li", "correct horse", Duration::from_secs(60)).unwrap();
        assert_eq!(who.id, agent.id);
        assert_eq!(
            authenticate(&conn, &token).unwrap().map(|a| a.id),
            Some(agent.id)
        );
        assert_eq!(authenticate(&conn, &"0".repeat(64)).unwrap(), None);
        logout(&conn, &token).unwrap();
        assert_eq!(authenticate(&conn, &token).unwrap(), None);
    }

    #[test]
    fn an_imported_agent_cannot_log_in_until_its_first_password_enables_it() {
        let conn = db();
        let (id, created) = import_agent(&conn, "kefu2", "小王", 1_600_000_000_000).unwrap();
        assert!(created);
        assert_eq!(
            import_agent(&conn, "KEFU2", "other", 1).unwrap(),
            (id, false)
        );
        let agent = agent_by_id(&conn, id).unwrap().unwrap();
        assert!(agent.disabled);
        assert_eq!(agent.display_name, "小王");
        for guess in ["!imported", "", "imported"] {
            assert!(matches!(
                login(&conn, "kefu2", guess, Duration::from_secs(60)),
                Err(AuthError::InvalidCredentials)
            ));
        }
        assert!(matches!(
            import_agent(&conn, "bad name", "", 1),
            Err(AuthError::BadUsername)
        ));
        set_password(&conn, "kefu2", "a good password").unwrap();
        assert!(login(&conn, "kefu2", "a good password", Duration::from_secs(60)).is_ok());
        // Disabling afterwards sticks through a later password change.
        update_agent(&conn, id, None, None, Some(true), None).unwrap();
        set_password(&conn, "kefu2", "another password").unwrap();
        assert!(agent_by_id(&conn, id).unwrap().unwrap().disabled);
    }

    #[test]
    fn password_change_revokes_tokens_and_weak_ones_are_refused() {
        let conn = db();
        add_agent(&conn, "wang", "", "longenough", false).unwrap();
        assert!(matches!(
            add_agent(&conn, "x", "", "short", false),
            Err(AuthError::WeakPassword)
        ));
        assert!(matches!(
            add_agent(&conn, "bad name", "", "longenough", false),
            Err(AuthError::BadUsername)
        ));
        let (token, _) = login(&conn, "wang", "longenough", Duration::from_secs(60)).unwrap();
        set_password(&conn, "wang", "another-one").unwrap();
        assert_eq!(authenticate(&conn, &token).unwrap(), None);
        assert!(login(&conn, "wang", "another-one", Duration::from_secs(60)).is_ok());
    }
}
