//! Scheduled backups (`[backup]`): when the next is due, what it is named, which old ones go.
//!
//! Each scheduled backup is a directory `kefud-backup-{UTC time}` in `backup.directory`,
//! written as `….partial` and renamed once its manifest is in place, so a directory under
//! the final name is always a finished backup. Decisions are pure ([`due_in`],
//! [`backup_name`], [`to_prune`]); [`run_once`] and [`newest`] do the I/O.
//!
//! Invariants: only directories named `kefud-backup-…` are ever deleted — never anything
//! else a shop keeps on the stick. Backups are ordered by the journal LSN their manifest
//! reaches, not by the clock: a Pi boots with a stale time until NTP sets it, and must not
//! then prune its newest backup as the oldest. A `….partial` left by a crash is deleted at
//! the next run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::manifest::{self, Manifest};
use super::BackupError;

/// Every scheduled backup's name starts with this.
pub const PREFIX: &str = "kefud-backup-";
const PARTIAL: &str = ".partial";

/// A finished scheduled backup found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub journal_last_lsn: u64,
    pub created_at_ms: i64,
}

/// How long until the next backup: `interval` after the newest one's creation (at once when
/// there is none, or when the clock says the newest is from the future).
pub fn due_in(newest_created_ms: Option<i64>, now_ms: i64, interval: Duration) -> Duration {
    let Some(created) = newest_created_ms else {
        return Duration::ZERO;
    };
    if created > now_ms {
        return Duration::ZERO;
    }
    let elapsed = Duration::from_millis((now_ms - created) as u64);
    interval.saturating_sub(elapsed)
}

/// `kefud-backup-YYYYMMDDTHHMMSSZ` for a Unix time in milliseconds.
pub fn backup_name(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{PREFIX}{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The backups to delete so that `keep` remain: all but the `keep` reaching furthest in the
/// journal (ties by creation time, then name).
pub fn to_prune(found: &[Found], keep: usize) -> Vec<String> {
    let mut sorted: Vec<&Found> = found.iter().collect();
    sorted.sort_by(|a, b| {
        (a.journal_last_lsn, a.created_at_ms, &a.name).cmp(&(
            b.journal_last_lsn,
            b.created_at_ms,
            &b.name,
        ))
    });
    let excess = sorted.len().saturating_sub(keep);
    sorted[..excess].iter().map(|f| f.name.clone()).collect()
}

/// The finished scheduled backups in `dir` (a missing directory has none), and the names of
/// leftover `….partial` ones. A directory with an unreadable manifest is neither: it is left
/// alone.
///
/// # Errors
/// [`BackupError::Io`] if `dir` cannot be listed.
pub fn scan(dir: &Path) -> Result<(Vec<Found>, Vec<String>), BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(super::io(dir)(e)),
    };
    let (mut found, mut partial) = (Vec::new(), Vec::new());
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with(PREFIX) {
            continue;
        }
        if name.ends_with(PARTIAL) {
            partial.push(name);
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path().join(manifest::FILE_NAME)) else {
            continue;
        };
        // Any schema: a backup from a newer kefud is still a backup to count and prune.
        if let Ok(m) = Manifest::decode(&bytes, i64::MAX) {
            found.push(Found {
                name,
                journal_last_lsn: m.journal_last_lsn,
                created_at_ms: m.created_at_ms,
            });
        }
    }
    Ok((found, partial))
}

/// When the newest backup in `dir` was made.
///
/// # Errors
/// [`BackupError::Io`] if `dir` cannot be listed.
pub fn newest(dir: &Path) -> Result<Option<i64>, BackupError> {
    let (found, _) = scan(dir)?;
    Ok(found
        .iter()
        .max_by_key(|f| (f.journal_last_lsn, f.created_at_ms))
        .map(|f| f.created_at_ms))
}

/// Takes one backup of `data_dir` into `dir` and prunes to `keep`; returns where it went and
/// its manifest.
///
/// # Errors
/// [`BackupError`] from the backup or the file system; a failed backup leaves a `….partial`
/// for the next run to delete, and prunes nothing.
pub fn run_once(
    data_dir: &Path,
    dir: &Path,
    keep: usize,
    now_ms: i64,
) -> Result<(PathBuf, Manifest), BackupError> {
    std::fs::create_dir_all(dir).map_err(super::io(dir))?;
    let (_, partial) = scan(dir)?;
    for name in partial {
        let path = dir.join(name);
        std::fs::remove_dir_all(&path).map_err(super::io(&path))?;
    }
    let name = backup_name(now_ms);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}{PARTIAL}"));
    let manifest = super::create(data_dir, &tmp)?;
    std::fs::rename(&tmp, &path).map_err(super::io(&path))?;
    crate::journal::segment::sync_dir(dir).map_err(super::io(dir))?;
    let (found, _) = scan(dir)?;
    for old in to_prune(&found, keep) {
        let old = dir.join(old);
        std::fs::remove_dir_all(&old).map_err(super::io(&old))?;
    }
    Ok((path, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_utc_times() {
        assert_eq!(backup_name(0), "kefud-backup-19700101T000000Z");
        assert_eq!(
            backup_name(1_709_210_096_789),
            "kefud-backup-20240229T123456Z"
        );
        assert_eq!(
            backup_name(951_782_400_000),
            "kefud-backup-20000229T000000Z"
        );
    }

    #[test]
    fn due_after_the_interval_from_the_newest() {
        let day = Duration::from_secs(86_400);
        assert_eq!(due_in(None, 5_000, day), Duration::ZERO);
        assert_eq!(
            due_in(Some(1_000), 3_601_000, day),
            day - Duration::from_secs(3600)
        );
        assert_eq!(due_in(Some(0), 86_400_001, day), Duration::ZERO);
        // A backup "from the future" (the clock stepped back): take one now.
        assert_eq!(due_in(Some(10_000), 5_000, day), Duration::ZERO);
    }

    #[test]
    fn pruning_keeps_the_newest_by_journal_position_not_clock() {
        let f = |name: &str, lsn, ms| Found {
            name: name.into(),
            journal_last_lsn: lsn,
            created_at_ms: ms,
        };
        let found = [
            f("kefud-backup-c", 30, 3),
            // Made after a boot with a stale clock: it looks old, it is the newest.
            f("kefud-backup-a", 90, 1),
            f("kefud-backup-b", 10, 2),
            f("kefud-backup-d", 30, 4),
        ];
        assert_eq!(to_prune(&found, 2), ["kefud-backup-b", "kefud-backup-c"]);
        assert_eq!(to_prune(&found, 4), Vec::<String>::new());
        assert_eq!(to_prune(&found, 10), Vec::<String>::new());
        assert_eq!(to_prune(&found, 1).len(), 3);
    }
}
