//! What admins set rather than what conversations journal: shop settings (one `settings` row
//! per key, a JSON or text value), the login device-proof key kept among them, and canned
//! replies.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::super::Error;

/// A setting's value.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn setting(conn: &Connection, key: &str) -> Result<Option<String>, Error> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?)
}

/// Stores a shop setting (replacing its value).
///
/// # Errors
/// [`Error::Sqlite`].
pub fn put_setting(conn: &Connection, key: &str, value: &str) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = ?2",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// The key device proofs are signed with (`login.rs`), made on first use and kept in the
/// store, so a browser's proof outlives restarts and upgrades.
///
/// # Errors
/// A store failure, or no randomness from the OS.
pub fn device_key(conn: &Connection) -> Result<[u8; 32], Error> {
    let mut fresh = [0u8; 32];
    getrandom::getrandom(&mut fresh).map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
    let fresh: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
    conn.execute(
        "INSERT OR IGNORE INTO settings (key, value) VALUES ('login_device_key', ?1)",
        params![fresh],
    )?;
    let stored = setting(conn, "login_device_key")?.unwrap_or_default();
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = stored
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| Error::Invalid("settings.login_device_key is damaged".into()))?;
    }
    Ok(key)
}

/// A canned reply.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CannedReply {
    pub id: i64,
    pub shortcut: String,
    pub text: String,
}

/// # Errors
/// [`Error::Sqlite`].
pub fn canned_replies(conn: &Connection) -> Result<Vec<CannedReply>, Error> {
    let rows = conn
        .prepare_cached("SELECT id, shortcut, text FROM canned_replies ORDER BY shortcut")?
        .query_map([], |r| {
            Ok(CannedReply {
                id: r.get(0)?,
                shortcut: r.get(1)?,
                text: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
