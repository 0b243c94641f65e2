//! Undoing an upgrade's schema migrations: the pre-migration snapshots `schema.rs` writes
//! (`pre-migration/kefud-schema{V}-{ms}.db`), which of them undoes the upgrade installed at a
//! given time, how long the journal must keep what came after it, and putting it back as
//! `kefud.db` for the previous kefud (`kefud rollback-store`, run by `kefud-rollback`).
//!
//! Invariants:
//! - A snapshot is put back only if the journal still holds every record after the snapshot's
//!   applied LSN: the previous kefud replays them, so nothing acknowledged since the upgrade is
//!   lost. Otherwise the refusal says so and names the way out (a backup).
//! - The store being replaced is first copied, as one consistent file, into `rolled-back/`;
//!   its WAL is removed before the snapshot takes its place, so no stale WAL frame is ever
//!   applied to the snapshot.
//! - What no journal record rebuilds (agents, settings, canned replies, uploads, API keys) is
//!   carried from the newer store into the snapshot wherever a table has the same columns in
//!   both, so a password or a key set after the upgrade survives the rollback; sessions are
//!   ended. This happens in a copy of the snapshot, which replaces the store only when whole.
//! - Which snapshot, whether the journal reaches back, and until when the journal keeps records
//!   for a rollback are pure decisions ([`undoing`], [`journal_reaches`], [`rollback_floor`]).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::Error;

/// How long after an upgrade's migration the journal keeps every record since its snapshot, so
/// that the upgrade can be undone with nothing lost.
pub const ROLLBACK_WINDOW_MS: u64 = 14 * 24 * 3600 * 1000;

/// One pre-migration snapshot: the schema it has and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreMigration {
    pub path: PathBuf,
    pub schema: i64,
    pub taken_ms: u64,
}

/// `kefud-schema0008-1765000000000.db` → (8, 1765000000000).
fn parse_name(name: &str) -> Option<(i64, u64)> {
    let rest = name.strip_prefix("kefud-schema")?.strip_suffix(".db")?;
    let (schema, ms) = rest.split_once('-')?;
    Some((schema.parse().ok()?, ms.parse().ok()?))
}

/// The snapshots in `dir` (the data directory's `pre-migration/`), oldest first; none if the
/// directory does not exist.
///
/// # Errors
/// [`Error::Invalid`] if the directory cannot be read.
pub fn list(dir: &Path) -> Result<Vec<PreMigration>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Invalid(format!("{}: {e}", dir.display()))),
    };
    let mut out: Vec<PreMigration> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (schema, taken_ms) = parse_name(&name)?;
            Some(PreMigration {
                path: e.path(),
                schema,
                taken_ms,
            })
        })
        .collect();
    out.sort_by_key(|s| (s.taken_ms, s.schema));
    Ok(out)
}

/// The snapshot that undoes an upgrade installed at `since_ms`: the first one taken at or after
/// it (the later ones are of schemas that upgrade itself made). None: no migration since.
pub fn undoing(snapshots: &[PreMigration], since_ms: u64) -> Option<&PreMigration> {
    snapshots.iter().find(|s| s.taken_ms >= since_ms)
}

/// Whether the journal, whose oldest segment starts at `first_lsn` (None: no segment), still
/// holds every record after `snapshot_lsn`, given that the store has applied up to
/// `store_lsn`.
pub fn journal_reaches(snapshot_lsn: u64, first_lsn: Option<u64>, store_lsn: u64) -> bool {
    match first_lsn {
        Some(first) => first <= snapshot_lsn + 1,
        None => store_lsn <= snapshot_lsn,
    }
}

/// The snapshot whose records the journal keeps at `now_ms`, with the end of its window: the
/// oldest taken within [`ROLLBACK_WINDOW_MS`] (a rollback that failed and was undone leaves a
/// newer snapshot, but the next try still puts back the first one since the upgrade).
pub fn rollback_floor(snapshots: &[PreMigration], now_ms: u64) -> Option<(&PreMigration, u64)> {
    snapshots
        .iter()
        .map(|s| (s, s.taken_ms.saturating_add(ROLLBACK_WINDOW_MS)))
        .filter(|&(_, until)| now_ms < until)
        .min_by_key(|(s, _)| s.taken_ms)
}

/// The journal position after which records are kept for a rollback at `now_ms`, and until
/// when: [`rollback_floor`] of the snapshots beside `db`. None when there is none, or it
/// cannot be read (then it cannot be put back either; logged).
pub fn kept_for_rollback(db: &Path, now_ms: u64) -> Option<(u64, u64)> {
    let dir = db.parent().unwrap_or(Path::new(".")).join("pre-migration");
    let snapshots = list(&dir)
        .map_err(|e| tracing::warn!(error = %e, "store: cannot list pre-migration snapshots"))
        .ok()?;
    let (newest, until) = rollback_floor(&snapshots, now_ms)?;
    match read_position(&newest.path) {
        Ok((lsn, _)) => Some((lsn, until)),
        Err(e) => {
            tracing::warn!(file = %newest.path.display(), error = %e, "store: unreadable pre-migration snapshot");
            None
        }
    }
}

/// A database file's applied LSN and schema version, read without migrating or writing.
///
/// # Errors
/// [`Error::Sqlite`] if it is not a kefud database SQLite can read.
pub fn read_position(path: &Path) -> Result<(u64, i64), Error> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let lsn = super::applied_lsn(&conn)?;
    let schema = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok((lsn, schema))
}

/// What [`undo`] did.
#[derive(Debug)]
pub struct Undone {
    /// The snapshot now in place, and its schema.
    pub snapshot: PreMigration,
    /// Where the replaced store was copied.
    pub aside: PathBuf,
    /// The replaced store's schema.
    pub from_schema: i64,
    /// Journal records after the snapshot, which the previous kefud replays.
    pub to_replay: u64,
    /// Tables no journal record rebuilds, copied from the newer store (same columns in both),
    /// and those left as they were at the snapshot (their columns differ).
    pub carried: Vec<String>,
    pub not_carried: Vec<String>,
}

/// Puts back, as `db`, the snapshot that undoes the upgrade installed at `since_ms`; None when
/// no migration was made since (the store stays as it is). The daemon must be stopped (the
/// caller holds the data-directory lock).
///
/// # Errors
/// [`Error::Invalid`] when the journal no longer holds what came after the snapshot, or on an
/// I/O failure; [`Error::Sqlite`] if a database cannot be read or copied.
pub fn undo(db: &Path, journal_dir: &Path, since_ms: u64) -> Result<Option<Undone>, Error> {
    let dir = db.parent().unwrap_or(Path::new("."));
    let snapshots = list(&dir.join("pre-migration"))?;
    let Some(snapshot) = undoing(&snapshots, since_ms).cloned() else {
        return Ok(None);
    };
    let io = |path: &Path, e: std::io::Error| Error::Invalid(format!("{}: {e}", path.display()));
    let (snapshot_lsn, _) = read_position(&snapshot.path)?;
    let (store_lsn, from_schema) = read_position(db)?;
    let segments =
        crate::journal::segment::list_read_only(journal_dir).map_err(|e| io(journal_dir, e))?;
    let first_lsn = segments.first().map(|s| s.first_lsn);
    if !journal_reaches(snapshot_lsn, first_lsn, store_lsn) {
        return Err(Error::Invalid(format!(
            "the snapshot {} is at journal position {snapshot_lsn}, but the journal now starts at {}: \
             what came in between is only in the current store, so putting the snapshot back would \
             lose it. Nothing was changed. Restore a backup taken before the upgrade instead \
             (`kefud restore` into an empty data directory)",
            snapshot.path.display(),
            first_lsn.unwrap_or(store_lsn + 1),
        )));
    }

    // The current store, kept whole before anything changes.
    let aside_dir = dir.join("rolled-back");
    std::fs::create_dir_all(&aside_dir).map_err(|e| io(&aside_dir, e))?;
    let aside = aside_dir.join(format!(
        "kefud-schema{from_schema:04}-{:013}.db",
        crate::clock::now_ms()
    ));
    Connection::open(db)?.execute("VACUUM INTO ?1", [aside.to_string_lossy()])?;
    sync(&aside).and_then(|()| sync(&aside_dir))?;

    // The snapshot, with what no journal record rebuilds brought over, made whole beside the
    // store before it takes the store's place: a failure up to the rename changes nothing.
    let tmp = dir.join("kefud.db.rollback.tmp");
    std::fs::copy(&snapshot.path, &tmp).map_err(|e| io(&tmp, e))?;
    let (carried, not_carried) = carry_unjournaled(&tmp, &aside)?;
    sync(&tmp)?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&side, e)),
        }
    }
    std::fs::rename(&tmp, db).map_err(|e| io(db, e))?;
    sync(dir)?;
    Ok(Some(Undone {
        snapshot,
        aside,
        from_schema,
        to_replay: store_lsn.saturating_sub(snapshot_lsn),
        carried,
        not_carried,
    }))
}

/// fsync of a file or a directory.
fn sync(path: &Path) -> Result<(), Error> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// The tables no journal record rebuilds and a rollback carries over: accounts, settings,
/// canned replies, uploads, API keys, label definitions. Sessions (`tokens`) are not carried: every session is
/// ended instead, since one the snapshot holds may have been revoked after the upgrade (a
/// password change ends them) and one made after it would have its times shifted again by the
/// clock steps the previous kefud replays. Uploads are carried as they are: a clock step
/// replayed shifts again the creation time of those made in the two days before it (their
/// quota window), which errs towards keeping them.
const UNJOURNALED: &[&str] = &[
    "agents",
    "settings",
    "canned_replies",
    "uploads",
    "api_keys",
    "labels",
];

/// Copies the [`UNJOURNALED`] tables' rows from the newer store `newer` into `db` (a file no
/// one else has open), each where both have the same columns, and ends every session; one
/// transaction. Returns the tables carried and those left as the snapshot has them.
fn carry_unjournaled(db: &Path, newer: &Path) -> Result<(Vec<String>, Vec<String>), Error> {
    let mut conn = Connection::open(db)?;
    // Everything in this one file (renamed whole into place), and rows replaced table by table
    // whatever their references (the bundled SQLite enforces foreign keys by default).
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.execute("ATTACH DATABASE ?1 AS newer", [newer.to_string_lossy()])?;
    let columns = |conn: &Connection, schema: &str, table: &str| -> Result<Vec<String>, Error> {
        let mut stmt = conn.prepare(&format!("PRAGMA {schema}.table_info({table})"))?;
        let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
        Ok(names.collect::<Result<_, _>>()?)
    };
    let (mut carried, mut not_carried) = (Vec::new(), Vec::new());
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM main.tokens", [])?;
    for table in UNJOURNALED {
        let here = columns(&tx, "main", table)?;
        // A table the older schema does not have (labels, before 012): nothing to carry.
        if here.is_empty() {
            continue;
        }
        if here == columns(&tx, "newer", table)? {
            tx.execute_batch(&format!(
                "DELETE FROM main.{table}; INSERT INTO main.{table} SELECT * FROM newer.{table};"
            ))?;
            carried.push((*table).to_string());
        } else {
            not_carried.push((*table).to_string());
        }
    }
    tx.commit()?;
    Ok((carried, not_carried))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(schema: i64, taken_ms: u64) -> PreMigration {
        PreMigration {
            path: PathBuf::from(format!("kefud-schema{schema:04}-{taken_ms:013}.db")),
            schema,
            taken_ms,
        }
    }

    #[test]
    fn names_parse_and_others_are_ignored() {
        assert_eq!(
            parse_name("kefud-schema0008-1765000000000.db"),
            Some((8, 1_765_000_000_000))
        );
        assert_eq!(parse_name("kefud-schema0008.db"), None);
        assert_eq!(parse_name("notes.txt"), None);
        assert_eq!(parse_name("kefud-schemax-1.db"), None);
    }

    #[test]
    fn the_first_snapshot_since_the_upgrade_undoes_it() {
        let snaps = [snap(5, 100), snap(8, 200), snap(9, 250)];
        assert_eq!(undoing(&snaps, 150), Some(&snaps[1]));
        assert_eq!(undoing(&snaps, 200), Some(&snaps[1]));
        assert_eq!(
            undoing(&snaps, 251),
            None,
            "no migration since: nothing to put back"
        );
        assert_eq!(undoing(&[], 0), None);
    }

    #[test]
    fn the_journal_must_reach_back_to_the_snapshot() {
        assert!(journal_reaches(100, Some(1), 500));
        assert!(journal_reaches(100, Some(101), 500));
        assert!(!journal_reaches(100, Some(102), 500), "record 101 is gone");
        assert!(
            journal_reaches(100, None, 100),
            "nothing after the snapshot"
        );
        assert!(!journal_reaches(100, None, 120));
    }

    #[test]
    fn the_journal_keeps_records_for_the_oldest_snapshot_within_the_window() {
        let snaps = [snap(5, 100), snap(8, 1_000), snap(8, 2_000)];
        let (floor, until) = rollback_floor(&snaps, 3_000).unwrap();
        assert_eq!(floor, &snaps[0]);
        assert_eq!(until, 100 + ROLLBACK_WINDOW_MS);
        let (floor, _) = rollback_floor(&snaps, 500 + ROLLBACK_WINDOW_MS).unwrap();
        assert_eq!(floor, &snaps[1], "the first one's window is over");
        assert_eq!(rollback_floor(&snaps, 2_000 + ROLLBACK_WINDOW_MS), None);
        assert_eq!(rollback_floor(&[], 0), None);
    }

    fn set_lsn(path: &Path, lsn: u64) {
        Connection::open(path)
            .unwrap()
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'applied_lsn'",
                [lsn as i64],
            )
            .unwrap();
    }

    /// A data directory upgraded at `upgraded_ms` from the schema before the current one, the
    /// store at LSN 10 then and at 25 after; the journal's oldest segment starts at `first_lsn`.
    fn upgraded(first_lsn: u64) -> (tempfile::TempDir, PathBuf, PathBuf, u64) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefud.db");
        let journal = dir.path().join("journal");
        std::fs::create_dir_all(&journal).unwrap();
        crate::journal::appender::Appender::create(&journal, first_lsn).unwrap();
        let older = super::super::schema::at_version(&db, super::super::schema::CURRENT - 1);
        // An agent who signed in before the upgrade: a session referring to the agent.
        older
            .execute_batch(
                "INSERT INTO agents (id, username, display_name, password_hash, created_at)
                     VALUES (1, 'li', 'Li', 'h', 0);
                 INSERT INTO tokens (hash, agent_id, created_at, expires_at) VALUES (x'01', 1, 0, 9);",
            )
            .unwrap();
        drop(older);
        set_lsn(&db, 10);
        let upgraded_ms = crate::clock::now_ms() as u64;
        let newer = super::super::open(&db).unwrap();
        newer
            .execute_batch(
                "INSERT INTO settings (key, value) VALUES ('after_upgrade', 'kept');
                 INSERT INTO agents (id, username, display_name, password_hash, created_at)
                     VALUES (2, 'wang', 'Wang', 'h', 1);
                 INSERT INTO tokens (hash, agent_id, created_at, expires_at) VALUES (x'02', 2, 1, 9);",
            )
            .unwrap();
        drop(newer);
        set_lsn(&db, 25);
        (dir, db, journal, upgraded_ms)
    }

    #[test]
    fn undo_puts_the_snapshot_back_and_keeps_the_newer_store_aside() {
        let (_dir, db, journal, upgraded_ms) = upgraded(1);
        let undone = undo(&db, &journal, upgraded_ms).unwrap().unwrap();
        let current = super::super::schema::CURRENT;
        assert_eq!(read_position(&db).unwrap(), (10, current - 1));
        assert_eq!(read_position(&undone.aside).unwrap(), (25, current));
        assert_eq!((undone.from_schema, undone.to_replay), (current, 15));
        assert!(!PathBuf::from(format!("{}-wal", db.display())).exists());
        assert!(
            undone.carried.contains(&"settings".to_string()),
            "{undone:?}"
        );
        let setting: String = Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT value FROM settings WHERE key = 'after_upgrade'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            setting, "kept",
            "a setting made after the upgrade is carried back"
        );
        let restored = Connection::open(&db).unwrap();
        let count = |sql: &str| -> i64 { restored.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM agents"), 2, "both agents");
        assert_eq!(
            count("SELECT COUNT(*) FROM tokens"),
            0,
            "every session ended"
        );
        assert!(
            !dir_has(&db, "kefud.db.rollback.tmp"),
            "the copy was renamed into place"
        );
        // Installed after the migration: nothing of that upgrade to undo.
        let later = crate::clock::now_ms() as u64 + 1;
        assert!(undo(&db, &journal, later).unwrap().is_none());
    }

    fn dir_has(db: &Path, name: &str) -> bool {
        db.parent().unwrap().join(name).exists()
    }

    #[test]
    fn undo_refuses_when_the_journal_no_longer_reaches_the_snapshot() {
        let (_dir, db, journal, upgraded_ms) = upgraded(12);
        let err = undo(&db, &journal, upgraded_ms).unwrap_err().to_string();
        assert!(err.contains("Nothing was changed"), "{err}");
        let current = super::super::schema::CURRENT;
        assert_eq!(
            read_position(&db).unwrap(),
            (25, current),
            "store untouched"
        );
    }
}
