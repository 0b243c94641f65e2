//! Backups of a data directory, taken while kefud runs, and their restore.
//!
//! A backup is a directory: `kefud.db`, `journal/*.wal`, `uploads/*`, `tls/*` (the box's
//! certificate authority and HTTPS certificate, so a restored box is still trusted by the
//! shop's devices; private keys 0600 in the backup as in the data directory) and, written
//! last, `manifest.json` ([`manifest`]: versions, the LSN range, every file's size and
//! SHA-256). A directory without a manifest is an unfinished backup and is never restored.
//!
//! # Consistency
//! The backup is the store at one LSN plus the journal after it, which is exactly what kefud
//! recovers from after a power cut:
//! 1. The journal's segments are listed and opened first; an open descriptor keeps a segment
//!    readable even if retention deletes it meanwhile.
//! 2. `kefud.db` is copied with SQLite's online backup API in one step, i.e. inside one read
//!    transaction: a consistent snapshot whose `meta.applied_lsn` (`A`, written in the same
//!    transaction as the rows it covers) says which journal records it holds.
//! 3. The segments are listed again (a rotation may have made new ones), and those from the
//!    one holding record `A + 1` on are copied up to their last CRC-checked frame ([`cut`]).
//!    Every record acknowledged before the backup began was synced before step 1, so it is
//!    either in the snapshot or in the copied journal; records written during the backup may
//!    be in it or not, but the journal copied is always a gap-free run `A + 1 ..= B`
//!    (checked; a run broken by a rotation racing the listing starts the backup over).
//! 4. Uploads are copied next: a message refers to an upload only once the upload's file is
//!    in place, so every upload a copied record names is there.
//! 5. The certificate files last. They are no part of the journal's story; a renewal racing
//!    the copy can pair a new server certificate with the old `state.json`, which kefud takes
//!    as due for renewal and mends at its start (`crate::tls`). The CA never changes.
//!
//! A restore writes these files into an empty data directory; kefud's recovery then replays
//! records `A + 1 ..= B` into the store, and the restored daemon is the original one as of LSN
//! `B`. Tables no record rebuilds (agents, sessions, settings, API keys, upload quotas) are
//! as of the snapshot.
//!
//! # Not interfering with the running daemon
//! Everything of the data directory is opened read-only: the store by a read-only SQLite
//! connection (a reader in WAL mode blocks no writer; the applier's periodic checkpoints are
//! passive, so they finish later rather than wait), the segments by plain reads, never the
//! lock file. The open segment is read while the writer appends to it, which is why only
//! CRC-checked frames are taken.

pub mod cut;
pub mod manifest;
pub mod schedule;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::journal::segment::{self, SegmentFile};
use crate::tar;
use manifest::{FileEntry, Manifest, ManifestError, STORE_FILE};

/// Attempts at a backup whose journal listing raced a rotation.
const ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: SQLite: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{} is not a kefud data directory (no kefud.db)", .0.display())]
    NoStore(PathBuf),
    #[error("{} is not empty: a backup goes into a new or empty directory", .0.display())]
    DestinationNotEmpty(PathBuf),
    #[error("{} is not empty: restore only into a new or empty data directory (move the old one aside first)", .0.display())]
    DataDirNotEmpty(PathBuf),
    #[error("cannot back up the journal: {0}")]
    Journal(String),
    #[error("{} is not a finished kefud backup: it has no manifest.json", .0.display())]
    NoManifest(PathBuf),
    #[error("backup refused: {}: {source}", path.display())]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("cannot archive the backup: {0}")]
    Tar(#[from] tar::TarError),
    #[error("backup damaged, nothing restored: {}: {reason}", path.display())]
    Damaged { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sqlite(path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `dir` is missing or an empty directory.
fn is_empty_or_missing(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Takes a backup of `data_dir` into `dest` (created; it must be new or empty), whether or not
/// a daemon runs on `data_dir`.
///
/// # Errors
/// [`BackupError`] naming the file: an unreadable data directory, a journal that is damaged or
/// kept changing under five attempts, or a destination that is not empty or not writable.
pub fn create(data_dir: &Path, dest: &Path) -> Result<Manifest, BackupError> {
    if !is_empty_or_missing(dest)? {
        return Err(BackupError::DestinationNotEmpty(dest.to_path_buf()));
    }
    let db = data_dir.join(STORE_FILE);
    if !db.exists() {
        return Err(BackupError::NoStore(data_dir.to_path_buf()));
    }
    std::fs::create_dir_all(dest.join("journal")).map_err(io(dest))?;
    let mut last_gap = String::new();
    for _ in 0..ATTEMPTS {
        match attempt(data_dir, dest)? {
            Ok(manifest) => return Ok(manifest),
            Err(gap) => last_gap = gap,
        }
        // Start over from an empty destination.
        for entry in std::fs::read_dir(dest.join("journal")).map_err(io(dest))? {
            let path = entry.map_err(io(dest))?.path();
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Err(BackupError::Journal(format!(
        "the journal kept rotating under the backup ({ATTEMPTS} attempts): {last_gap}"
    )))
}

/// One try at [`create`]; `Ok(Err(gap))` when the journal copied does not join the snapshot.
fn attempt(data_dir: &Path, dest: &Path) -> Result<Result<Manifest, String>, BackupError> {
    let journal_dir = data_dir.join("journal");
    let mut open: Vec<(SegmentFile, File)> = Vec::new();
    open_new_segments(&journal_dir, &mut open)?;
    let snapshot = snapshot_store(&data_dir.join(STORE_FILE), &dest.join(STORE_FILE))?;
    open_new_segments(&journal_dir, &mut open)?;

    let firsts: Vec<u64> = open.iter().map(|(s, _)| s.first_lsn).collect();
    let from = cut::first_needed(&firsts, snapshot.applied_lsn).unwrap_or(open.len());
    let mut files = vec![file_entry(&dest.join(STORE_FILE), STORE_FILE)?];
    let mut taken = Vec::new();
    let count = open.len();
    for (i, (seg, file)) in open.iter_mut().enumerate().skip(from) {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&seg.path))?;
        let t = cut::verified_len(&bytes, seg, i + 1 == count).map_err(BackupError::Journal)?;
        let name = format!("journal/{}", segment::file_name(seg.first_lsn));
        files.push(write_file(&dest.join(&name), &name, &bytes[..t.len])?);
        taken.push(t);
    }
    let (journal_first_lsn, journal_last_lsn) = match cut::contiguous(&taken, snapshot.applied_lsn)
    {
        Ok(range) => range,
        Err(gap) => return Ok(Err(gap)),
    };
    files.extend(copy_uploads(
        &data_dir.join("uploads"),
        &dest.join("uploads"),
    )?);
    files.extend(copy_tls(
        &data_dir.join(crate::tls::files::DIR),
        &dest.join(crate::tls::files::DIR),
    )?);
    let manifest = Manifest {
        format_version: manifest::FORMAT_VERSION,
        kefud_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version: snapshot.schema_version,
        created_at_ms: crate::model::now_ms(),
        store_applied_lsn: snapshot.applied_lsn,
        journal_first_lsn,
        journal_last_lsn,
        files,
    };
    let path = dest.join(manifest::FILE_NAME);
    let tmp = dest.join("manifest.json.tmp");
    write_synced(&tmp, &manifest.encode())?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    for dir in [dest.join("journal"), dest.to_path_buf()] {
        segment::sync_dir(&dir).map_err(io(&dir))?;
    }
    Ok(Ok(manifest))
}

/// Opens the segments of `dir` not yet in `open`, keeping LSN order.
fn open_new_segments(dir: &Path, open: &mut Vec<(SegmentFile, File)>) -> Result<(), BackupError> {
    let listed = match segment::list_read_only(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(dir)(e)),
    };
    for seg in listed {
        if open.iter().any(|(s, _)| s.first_lsn == seg.first_lsn) {
            continue;
        }
        match File::open(&seg.path) {
            Ok(f) => open.push((seg, f)),
            // Deleted by retention since the listing: nothing the snapshot needs.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&seg.path)(e)),
        }
    }
    open.sort_by_key(|(s, _)| s.first_lsn);
    Ok(())
}

struct Snapshot {
    applied_lsn: u64,
    schema_version: i64,
}

/// Copies the store with SQLite's online backup, all pages in one step (one read
/// transaction), into a self-contained file (rollback journal mode, no `-wal` beside it).
fn snapshot_store(src: &Path, dst: &Path) -> Result<Snapshot, BackupError> {
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(src))?;
    source
        .busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite(src))?;
    let mut copy = Connection::open(dst).map_err(sqlite(dst))?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy).map_err(sqlite(dst))?;
        let mut waited = 0;
        loop {
            match backup.step(-1).map_err(sqlite(src))? {
                rusqlite::backup::StepResult::Done => break,
                // A writer holds a lock this instant: try again shortly (10 s at most).
                _ if waited < 1000 => {
                    waited += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => {
                    return Err(BackupError::Journal(format!(
                        "the store stayed busy for 10 s ({other:?})"
                    )))
                }
            }
        }
    }
    copy.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sqlite(dst))?;
    let applied_lsn = crate::store::applied_lsn(&copy).map_err(|e| {
        BackupError::Journal(format!("cannot read the snapshot's applied LSN: {e}"))
    })?;
    let schema_version = copy
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite(dst))?;
    copy.close().map_err(|(_, e)| sqlite(dst)(e))?;
    File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(io(dst))?;
    Ok(Snapshot {
        applied_lsn,
        schema_version,
    })
}

/// Copies every upload of `src` (a missing directory has none) into `dst`.
fn copy_uploads(src: &Path, dst: &Path) -> Result<Vec<FileEntry>, BackupError> {
    let entries = match std::fs::read_dir(src) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(src)(e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| crate::wire::is_upload_id(n))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let from = src.join(&name);
        let bytes = match std::fs::read(&from) {
            Ok(b) => b,
            // Swept as an orphan since the listing: no message refers to it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&from)(e)),
        };
        std::fs::create_dir_all(dst).map_err(io(dst))?;
        let rel = format!("uploads/{name}");
        out.push(write_file(&dst.join(&name), &rel, &bytes)?);
    }
    if !out.is_empty() {
        segment::sync_dir(dst).map_err(io(dst))?;
    }
    Ok(out)
}

/// Copies the certificate files of `src` (none when HTTPS never ran) into `dst`.
fn copy_tls(src: &Path, dst: &Path) -> Result<Vec<FileEntry>, BackupError> {
    let mut out = Vec::new();
    for (name, _) in crate::tls::files::FILES {
        let from = src.join(name);
        let bytes = match std::fs::read(&from) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&from)(e)),
        };
        std::fs::create_dir_all(dst).map_err(io(dst))?;
        let rel = format!("{}/{name}", crate::tls::files::DIR);
        out.push(write_file(&dst.join(name), &rel, &bytes)?);
    }
    if !out.is_empty() {
        segment::sync_dir(dst).map_err(io(dst))?;
    }
    Ok(out)
}

/// Creates `path` (truncating it) with the mode the file it holds needs: 0600 for the
/// certificate files' private keys, the default otherwise.
fn create_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let in_tls = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == crate::tls::files::DIR);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if in_tls && crate::tls::files::is_key(name) {
        options.mode(0o600);
    }
    options.open(path)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut f = create_file(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Writes `bytes` to `path`, synced, and returns its manifest entry as `rel`.
fn write_file(path: &Path, rel: &str, bytes: &[u8]) -> Result<FileEntry, BackupError> {
    write_synced(path, bytes)?;
    Ok(FileEntry {
        path: rel.to_string(),
        bytes: bytes.len() as u64,
        sha256: manifest::sha256_hex(bytes),
    })
}

/// The manifest entry of a file already written, read back.
fn file_entry(path: &Path, rel: &str) -> Result<FileEntry, BackupError> {
    let (bytes, sha256) = hash_file(path, None)?;
    Ok(FileEntry {
        path: rel.to_string(),
        bytes,
        sha256,
    })
}

/// Size and SHA-256 of `path`, streamed; the bytes also go to `copy` when given.
fn hash_file(path: &Path, mut copy: Option<&mut File>) -> Result<(u64, String), BackupError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(out) = copy.as_deref_mut() {
            out.write_all(&buf[..n]).map_err(io(path))?;
        }
        total += n as u64;
    }
    Ok((total, manifest::hex(&hasher.finalize())))
}

/// Reads and checks `src`'s manifest and verifies every file it lists (size and SHA-256),
/// without writing anything.
///
/// # Errors
/// [`BackupError`] naming the file: no manifest, a damaged or newer one, a file missing or
/// differing from the manifest.
pub fn verify(src: &Path) -> Result<Manifest, BackupError> {
    let path = src.join(manifest::FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NoManifest(src.to_path_buf()))
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let manifest = Manifest::decode(&bytes, crate::store::schema::CURRENT)
        .map_err(|source| BackupError::Manifest { path, source })?;
    for entry in &manifest.files {
        let path = src.join(&entry.path);
        let (bytes, sha256) = hash_file(&path, None)?;
        manifest::verify(entry, bytes, &sha256)
            .map_err(|reason| BackupError::Damaged { path, reason })?;
    }
    Ok(manifest)
}

/// Restores the backup in `src` into `data_dir`, which must be missing or empty: verifies
/// everything first ([`verify`]), then copies each file, checking it again as it is copied,
/// synced. Recovery at the next start replays the journal beyond the store.
///
/// # Errors
/// [`BackupError`]: a non-empty data directory, or anything [`verify`] refuses (nothing is
/// written then); an I/O error while copying (the data directory is then partly written and
/// must be emptied before trying again).
pub fn restore(src: &Path, data_dir: &Path) -> Result<Manifest, BackupError> {
    if !is_empty_or_missing(data_dir)? {
        return Err(BackupError::DataDirNotEmpty(data_dir.to_path_buf()));
    }
    let manifest = verify(src)?;
    for dir in ["", "journal", "uploads", crate::tls::files::DIR] {
        std::fs::create_dir_all(data_dir.join(dir)).map_err(io(data_dir))?;
    }
    for entry in &manifest.files {
        let from = src.join(&entry.path);
        let to = data_dir.join(&entry.path);
        let mut out = create_file(&to).map_err(io(&to))?;
        let (bytes, sha256) = hash_file(&from, Some(&mut out))?;
        manifest::verify(entry, bytes, &sha256)
            .map_err(|reason| BackupError::Damaged { path: from, reason })?;
        out.sync_all().map_err(io(&to))?;
    }
    for dir in ["journal", "uploads", crate::tls::files::DIR, ""] {
        let dir = data_dir.join(dir);
        segment::sync_dir(&dir).map_err(io(&dir))?;
    }
    Ok(manifest)
}

/// Writes the backup in `dir` as a tar archive whose entries sit under `top/`: the manifest
/// first, then every file in the manifest's order, each read once. `write` takes the archive
/// chunk by chunk (an HTTP body, a file).
///
/// # Errors
/// [`BackupError`] if the backup cannot be read, or `write` fails (the reader went away).
pub fn write_tar(
    dir: &Path,
    top: &str,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), BackupError> {
    let manifest_path = dir.join(manifest::FILE_NAME);
    let bytes = std::fs::read(&manifest_path).map_err(io(&manifest_path))?;
    let m = Manifest::decode(&bytes, i64::MAX).map_err(|source| BackupError::Manifest {
        path: manifest_path.clone(),
        source,
    })?;
    let mtime = (m.created_at_ms.max(0) / 1000) as u64;
    let header = |rel: &str, size: u64| tar::header(&format!("{top}/{rel}"), size, mtime);
    write(&header(manifest::FILE_NAME, bytes.len() as u64)?).map_err(io(dir))?;
    write(&bytes).map_err(io(dir))?;
    write(tar::padding(bytes.len() as u64)).map_err(io(dir))?;
    let mut buf = vec![0u8; 64 * 1024];
    for f in &m.files {
        let path = dir.join(&f.path);
        let mut file = File::open(&path).map_err(io(&path))?;
        write(&header(&f.path, f.bytes)?).map_err(io(dir))?;
        let mut left = f.bytes;
        while left > 0 {
            let n = file.read(&mut buf).map_err(io(&path))?;
            if n == 0 {
                return Err(BackupError::Damaged {
                    path,
                    reason: format!("{left} bytes shorter than the manifest says"),
                });
            }
            let n = n.min(left as usize);
            write(&buf[..n]).map_err(io(dir))?;
            left -= n as u64;
        }
        write(tar::padding(f.bytes)).map_err(io(dir))?;
    }
    write(&tar::END).map_err(io(dir))
}

/// What `kefud backup` and `kefud restore` print.
pub fn describe(m: &Manifest) -> String {
    let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
    format!(
        "{} files, {bytes} bytes: the store at LSN {} (schema {}) and the journal's records {}..={}",
        m.files.len() + 1,
        m.store_applied_lsn,
        m.schema_version,
        m.journal_first_lsn,
        m.journal_last_lsn
    )
}
