//! Embedded, forward-only, transactional schema migrations.
//!
//! Migration `i` (1-based) brings `PRAGMA user_version` from `i - 1` to `i` inside one
//! transaction, so a crash mid-migration leaves the previous version intact. A database whose
//! version is newer than this binary knows is refused: a downgrade would silently misread it.
//!
//! Before migrating a database that has data (version 1 or more), a copy of it as it was is
//! written beside it (`pre-migration/kefud-schema{V}-{ms}.db`, SQLite's `VACUUM INTO`: one
//! consistent file, WAL included); the newest [`SNAPSHOTS_KEPT`] are kept. With the previous
//! binary, that file put back as `kefud.db` undoes the upgrade (the journal replays what came
//! after it, as far as it still holds it).

use std::path::Path;

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
    include_str!("migrations/008_cluster.sql"),
    include_str!("migrations/009_contact_details.sql"),
    include_str!("migrations/010_search_index_merges.sql"),
    include_str!("migrations/011_cluster_ops_by_message.sql"),
    include_str!("migrations/012_labels_ratings.sql"),
    include_str!("migrations/013_replicated_kb_and_deliveries.sql"),
    include_str!("migrations/014_conversation_holders.sql"),
    include_str!("migrations/015_contact_versions.sql"),
    include_str!("migrations/016_replicated_annotations.sql"),
];

/// The schema version this binary writes.
pub const CURRENT: i64 = MIGRATIONS.len() as i64;

/// Pre-migration snapshots kept (the newest).
pub const SNAPSHOTS_KEPT: usize = 2;

/// Whether a database at `version` gets a snapshot before migrating: it has data and is older.
fn snapshot_needed(version: i64) -> bool {
    (1..CURRENT).contains(&version)
}

/// The snapshots to delete among `names` (file names in the snapshot directory): all but the
/// newest `keep` of ours. Names sort by version, then time.
fn snapshots_to_prune(mut names: Vec<String>, keep: usize) -> Vec<String> {
    names.retain(|n| n.starts_with("kefud-schema") && n.ends_with(".db"));
    names.sort();
    let excess = names.len().saturating_sub(keep);
    names.truncate(excess);
    names
}

/// Brings the schema up to [`CURRENT`], first copying a database with data into
/// `snapshot_dir` (when given).
///
/// # Errors
/// [`Error::TooNew`] for a database from a newer kefud, [`Error::Sqlite`] if the snapshot or a
/// migration fails (its transaction is rolled back; no migration runs without its snapshot).
pub fn migrate(conn: &mut Connection, snapshot_dir: Option<&Path>) -> Result<(), Error> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT {
        return Err(Error::TooNew {
            found: version,
            known: CURRENT,
        });
    }
    if let Some(dir) = snapshot_dir.filter(|_| snapshot_needed(version)) {
        snapshot(conn, dir, version)?;
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

/// Writes the database as it is into `dir` and prunes older snapshots.
fn snapshot(conn: &Connection, dir: &Path, version: i64) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Invalid(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let file = dir.join(format!("kefud-schema{version:04}-{ms:013}.db"));
    conn.execute("VACUUM INTO ?1", [file.to_string_lossy()])?;
    tracing::info!(file = %file.display(), "store: snapshot before the schema migration");
    let names = std::fs::read_dir(dir)
        .map_err(io)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    for name in snapshots_to_prune(names, SNAPSHOTS_KEPT) {
        if let Err(e) = std::fs::remove_file(dir.join(&name)) {
            tracing::warn!(file = name, error = %e, "store: could not prune an old snapshot");
        }
    }
    Ok(())
}

/// A database at `version`, as an older kefud left it, with one row of data (a `marker` in
/// `meta`): for tests of migrations and of undoing them.
#[cfg(test)]
pub(crate) fn at_version(path: &Path, version: i64) -> Connection {
    let conn = Connection::open(path).unwrap();
    for sql in &MIGRATIONS[..version as usize] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", version).unwrap();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('marker', 'before') ON CONFLICT(key) DO UPDATE SET value = 'before'",
        [],
    )
    .unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, None).unwrap();
        migrate(&mut conn, None).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT);
        conn.pragma_update(None, "user_version", CURRENT + 1)
            .unwrap();
        let err = migrate(&mut conn, None).unwrap_err();
        assert!(matches!(err, Error::TooNew { .. }));
        assert!(
            err.to_string().contains("`kefud restore` a backup"),
            "the refusal says how to roll back: {err}"
        );
    }

    #[test]
    fn a_database_with_data_is_copied_before_it_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = dir.path().join("pre-migration");
        let mut conn = at_version(&dir.path().join("kefud.db"), CURRENT - 1);
        migrate(&mut conn, Some(&snapshots)).unwrap();
        let names: Vec<String> = std::fs::read_dir(&snapshots)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let copy = Connection::open(snapshots.join(&names[0])).unwrap();
        let (version, marker): (i64, String) = (
            copy.query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap(),
            copy.query_row("SELECT value FROM meta WHERE key = 'marker'", [], |r| {
                r.get(0)
            })
            .unwrap(),
        );
        assert_eq!((version, marker.as_str()), (CURRENT - 1, "before"));
        // Current already: nothing to migrate, no new snapshot.
        migrate(&mut conn, Some(&snapshots)).unwrap();
        assert_eq!(std::fs::read_dir(&snapshots).unwrap().count(), 1);
    }

    #[test]
    fn a_new_database_gets_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = dir.path().join("pre-migration");
        let mut conn = Connection::open(dir.path().join("kefud.db")).unwrap();
        migrate(&mut conn, Some(&snapshots)).unwrap();
        assert!(!snapshots.exists());
    }

    #[test]
    fn only_the_newest_snapshots_of_ours_are_kept() {
        let names = [
            "kefud-schema0006-0000000000300.db",
            "kefud-schema0005-0000000000100.db",
            "kefud-schema0006-0000000000200.db",
            "notes.txt",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            snapshots_to_prune(names, 2),
            ["kefud-schema0005-0000000000100.db"]
        );
        assert!(snapshots_to_prune(vec!["kefud-schema0001-1.db".into()], 2).is_empty());
    }
}
