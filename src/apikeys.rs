//! API keys for the HTTP API channel (`POST /api/v1/inbox/{channel}/messages`).
//!
//! A key is `kefu_` and 64 hex digits (256 random bits), bound to one channel and shown once
//! when created; the store keeps only its SHA-256, so a copy of the database does not leak
//! usable keys. Revoking stamps `revoked_at`; a revoked key never authenticates again.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::now_ms;

const PREFIX: &str = "kefu_";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "channel must be 1-32 letters, digits, '.', '_' or '-' (and not \"web\", the widget's)"
    )]
    BadChannel,
    #[error("name must be at most 100 characters")]
    BadName,
    #[error("no API key {0}")]
    NoSuchKey(i64),
    #[error("cannot draw random bytes: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

impl From<rusqlite::Error> for KeyError {
    fn from(e: rusqlite::Error) -> Self {
        KeyError::Store(e.into())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub channel: String,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Whether `channel` may carry API messages: a valid channel id other than the widget's.
pub fn valid_channel(channel: &str) -> bool {
    channel != crate::model::WEB_CHANNEL
        && !channel.is_empty()
        && channel.len() <= crate::model::CHANNEL_MAX
        && channel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Creates a key for `channel`; returns it (the only time it is visible) and its record.
///
/// # Errors
/// [`KeyError`] for a bad channel or name, or a store failure.
pub fn create(conn: &Connection, channel: &str, name: &str) -> Result<(String, ApiKey), KeyError> {
    if !valid_channel(channel) {
        return Err(KeyError::BadChannel);
    }
    if name.chars().count() > 100 {
        return Err(KeyError::BadName);
    }
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = format!(
        "{PREFIX}{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let created_at = now_ms();
    conn.execute(
        "INSERT INTO api_keys (channel, name, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![channel, name, hash(&key).as_slice(), created_at],
    )?;
    Ok((
        key,
        ApiKey {
            id: conn.last_insert_rowid(),
            channel: channel.to_string(),
            name: name.to_string(),
            created_at,
            revoked_at: None,
        },
    ))
}

/// # Errors
/// [`KeyError::Store`].
pub fn list(conn: &Connection) -> Result<Vec<ApiKey>, KeyError> {
    let rows = conn
        .prepare_cached(
            "SELECT id, channel, name, created_at, revoked_at FROM api_keys ORDER BY id",
        )?
        .query_map([], |r| {
            Ok(ApiKey {
                id: r.get(0)?,
                channel: r.get(1)?,
                name: r.get(2)?,
                created_at: r.get(3)?,
                revoked_at: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// # Errors
/// [`KeyError::NoSuchKey`] for an unknown or already revoked key.
pub fn revoke(conn: &Connection, id: i64) -> Result<(), KeyError> {
    let changed = conn.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now_ms()],
    )?;
    if changed == 0 {
        return Err(KeyError::NoSuchKey(id));
    }
    Ok(())
}

/// The channel a live key is for.
///
/// # Errors
/// [`KeyError::Store`].
pub fn authenticate(conn: &Connection, key: &str) -> Result<Option<String>, KeyError> {
    if !key.starts_with(PREFIX) || key.len() != PREFIX.len() + 64 {
        return Ok(None);
    }
    Ok(conn
        .prepare_cached("SELECT channel FROM api_keys WHERE hash = ?1 AND revoked_at IS NULL")?
        .query_row(params![hash(key).as_slice()], |r| r.get(0))
        .optional()?)
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
    fn create_authenticate_revoke() {
        let conn = db();
        let (key, record) = create(&conn, "kiosk", "front door").unwrap();
        assert!(key.starts_with("kefu_") && key.len() == 69);
        assert_eq!(authenticate(&conn, &key).unwrap().as_deref(), Some("kiosk"));
        assert_eq!(authenticate(&conn, "kefu_nope").unwrap(), None);
        let stored: Vec<u8> = conn
            .query_row("SELECT hash FROM api_keys", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, key.as_bytes(), "only the hash is stored");
        revoke(&conn, record.id).unwrap();
        assert_eq!(authenticate(&conn, &key).unwrap(), None);
        assert!(matches!(
            revoke(&conn, record.id),
            Err(KeyError::NoSuchKey(_))
        ));
        assert!(list(&conn).unwrap()[0].revoked_at.is_some());
    }

    #[test]
    fn channels_are_checked() {
        let conn = db();
        assert!(matches!(
            create(&conn, "web", ""),
            Err(KeyError::BadChannel)
        ));
        assert!(matches!(
            create(&conn, "a b", ""),
            Err(KeyError::BadChannel)
        ));
        assert!(create(&conn, "app-ios", "").is_ok());
    }
}
