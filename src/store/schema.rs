//! Embedded, forward-only, transactional schema migrations.
//!
//! Migration `i` (1-based) brings `PRAGMA user_version` from `i - 1` to `i` inside one
//! transaction, so a crash mid-migration leaves the previous version intact. A database whose
//! version is newer than this binary knows is refused: a downgrade would silently misread it.

use rusqlite::Connection;

use super::Error;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_init.sql"),
    include_str!("migrations/002_routing.sql"),
    include_str!("migrations/003_console.sql"),
    include_str!("migrations/004_api_keys.sql"),
    include_str!("migrations/005_channels.sql"),
    include_str!("migrations/006_upload_quotas.sql"),
    include_str!("migrations/007_queue_by_team.sql"),
];

/// The schema version this binary writes.
pub const CURRENT: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`CURRENT`].
///
/// # Errors
/// [`Error::TooNew`] for a database from a newer kefud, [`Error::Sqlite`] if a migration fails
/// (its transaction is rolled back).
pub fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT {
        return Err(Error::TooNew {
            found: version,
            known: CURRENT,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "store: schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT);
        conn.pragma_update(None, "user_version", CURRENT + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(matches!(err, Error::TooNew { .. }));
        assert!(
            err.to_string().contains("`kefud restore` a backup"),
            "the refusal says how to roll back: {err}"
        );
    }
}
