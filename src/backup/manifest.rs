//! The backup's manifest: what a backup holds, encoded and checked. Pure: no I/O.
//!
//! `manifest.json` is an envelope `{"format":"kefud-backup","sha256":HEX,"manifest":{...}}`
//! whose `sha256` covers the exact bytes of the `manifest` object, so one flipped byte anywhere
//! in the file is refused, like one anywhere in the files it lists (each with its size and
//! SHA-256). The manifest's `format_version` is read before anything else in it, so a backup
//! from a newer kefud is refused as newer, not as unreadable.
//!
//! Invariant: every listed path is one of `kefud.db`, `journal/{first_lsn:020}.wal`,
//! `uploads/{sha256}.{ext}` or one of the certificate files `tls/{ca,server}.{key,crt}` and
//! `tls/state.json` ([`check_path`]): a manifest cannot make a restore write outside
//! the data directory, or write anything kefud would not itself have written there.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The envelope's `format` value.
pub const FORMAT: &str = "kefud-backup";
/// The layout this binary writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's own file name in a backup.
pub const FILE_NAME: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The kefud that wrote the backup (`CARGO_PKG_VERSION`).
    pub kefud_version: String,
    /// `PRAGMA user_version` of the backed-up `kefud.db`.
    pub schema_version: i64,
    /// Unix milliseconds when the backup was taken.
    pub created_at_ms: i64,
    /// `meta.applied_lsn` of the backed-up `kefud.db`: its rows are the journal up to here.
    pub store_applied_lsn: u64,
    /// The journal's records in the backup: `journal_first_lsn..=journal_last_lsn` (the first
    /// segment may start before the store's LSN; an empty range when `last < first`).
    pub journal_first_lsn: u64,
    pub journal_last_lsn: u64,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the backup's (and the data directory's) root, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the file's content.
    pub sha256: String,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    format: &'static str,
    sha256: String,
    manifest: &'a RawValue,
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    format: String,
    sha256: String,
    #[serde(borrow)]
    manifest: &'a RawValue,
}

#[derive(Deserialize)]
struct VersionOnly {
    format_version: u32,
}

/// Why a manifest (or a file it lists) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("not a readable kefud backup manifest (damaged, or not a manifest): {0}")]
    NotAManifest(String),
    #[error("the manifest's checksum does not match its content: the file is damaged")]
    Checksum,
    #[error("written by a newer kefud (backup format {found}; this kefud reads up to {known}): restore it with that version or a newer one")]
    NewerFormat { found: u32, known: u32 },
    #[error("its store has schema version {found}, newer than this kefud's {known}: restore it with the kefud that made it ({kefud}) or a newer one")]
    NewerSchema {
        found: i64,
        known: i64,
        kefud: String,
    },
    #[error("lists a file kefud would not write there: {0:?}")]
    BadPath(String),
    #[error("lists {0} twice")]
    Duplicate(String),
    #[error("lists no kefud.db")]
    NoStore,
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

impl Manifest {
    /// The `manifest.json` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_string(self).expect("invariant: a manifest serialises");
        let raw = RawValue::from_string(body).expect("invariant: serde_json wrote valid JSON");
        let envelope = EnvelopeOut {
            format: FORMAT,
            sha256: sha256_hex(raw.get().as_bytes()),
            manifest: &raw,
        };
        let mut out = serde_json::to_vec_pretty(&envelope).expect("invariant: serialises");
        out.push(b'\n');
        out
    }

    /// Parses and checks `manifest.json`: envelope, checksum, format version, then the
    /// manifest itself, its schema version against `known_schema`, and every path.
    ///
    /// # Errors
    /// [`ManifestError`] naming the first problem.
    pub fn decode(bytes: &[u8], known_schema: i64) -> Result<Manifest, ManifestError> {
        let envelope: EnvelopeIn<'_> = serde_json::from_slice(bytes)
            .map_err(|e| ManifestError::NotAManifest(e.to_string()))?;
        if envelope.format != FORMAT {
            return Err(ManifestError::NotAManifest(format!(
                "format is {:?}, not {FORMAT:?}",
                envelope.format
            )));
        }
        let raw = envelope.manifest.get();
        if sha256_hex(raw.as_bytes()) != envelope.sha256 {
            return Err(ManifestError::Checksum);
        }
        let version: VersionOnly =
            serde_json::from_str(raw).map_err(|e| ManifestError::NotAManifest(e.to_string()))?;
        if version.format_version > FORMAT_VERSION {
            return Err(ManifestError::NewerFormat {
                found: version.format_version,
                known: FORMAT_VERSION,
            });
        }
        let manifest: Manifest =
            serde_json::from_str(raw).map_err(|e| ManifestError::NotAManifest(e.to_string()))?;
        if manifest.schema_version > known_schema {
            return Err(ManifestError::NewerSchema {
                found: manifest.schema_version,
                known: known_schema,
                kefud: manifest.kefud_version.clone(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for f in &manifest.files {
            check_path(&f.path)?;
            if !seen.insert(f.path.as_str()) {
                return Err(ManifestError::Duplicate(f.path.clone()));
            }
        }
        if !seen.contains(STORE_FILE) {
            return Err(ManifestError::NoStore);
        }
        Ok(manifest)
    }
}

/// The store's file, in a backup and in a data directory.
pub const STORE_FILE: &str = "kefud.db";

/// Accepts only the paths a backup writes (see the module's invariant).
///
/// # Errors
/// [`ManifestError::BadPath`] for anything else.
pub fn check_path(path: &str) -> Result<(), ManifestError> {
    let ok = match path.split_once('/') {
        None => path == STORE_FILE,
        Some(("journal", name)) => crate::journal::segment::parse_name(name).is_some(),
        Some(("uploads", name)) => crate::wire::is_upload_id(name),
        Some((crate::tls::files::DIR, name)) => {
            crate::tls::files::FILES.iter().any(|(n, _)| *n == name)
        }
        Some(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ManifestError::BadPath(path.to_string()))
    }
}

/// Checks a listed file against what was read of it.
///
/// # Errors
/// A sentence saying how the file differs from the manifest.
pub fn verify(entry: &FileEntry, bytes: u64, sha256: &str) -> Result<(), String> {
    if bytes != entry.bytes {
        return Err(format!(
            "{} bytes where the manifest says {}",
            bytes, entry.bytes
        ));
    }
    if sha256 != entry.sha256 {
        return Err(format!(
            "SHA-256 {sha256} where the manifest says {}",
            entry.sha256
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            kefud_version: "0.1.0".into(),
            schema_version: 7,
            created_at_ms: 1_700_000_000_000,
            store_applied_lsn: 41,
            journal_first_lsn: 30,
            journal_last_lsn: 57,
            files: vec![
                FileEntry {
                    path: "kefud.db".into(),
                    bytes: 4096,
                    sha256: sha256_hex(b"db"),
                },
                FileEntry {
                    path: format!("journal/{}", crate::journal::segment::file_name(30)),
                    bytes: 1024,
                    sha256: sha256_hex(b"seg"),
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode(), 7), Ok(m));
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                Manifest::decode(&bad, 7).is_err(),
                "byte {i} ({:?}) flipped was accepted",
                bytes[i] as char
            );
        }
    }

    #[test]
    fn newer_format_and_schema_are_refused_as_newer() {
        let mut m = sample();
        m.format_version = FORMAT_VERSION + 1;
        assert!(matches!(
            Manifest::decode(&m.encode(), 7),
            Err(ManifestError::NewerFormat { found, .. }) if found == FORMAT_VERSION + 1
        ));
        let m = sample();
        assert!(matches!(
            Manifest::decode(&m.encode(), 6),
            Err(ManifestError::NewerSchema {
                found: 7,
                known: 6,
                ..
            })
        ));
    }

    #[test]
    fn paths_outside_the_layout_are_refused() {
        for bad in [
            "../etc/passwd",
            "/kefud.db",
            "journal/../kefud.db",
            "journal/1.wal",
            "uploads/x.png",
            "kefud.db-wal",
            "kefud.lock",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        check_path("kefud.db").unwrap();
        check_path(&format!("uploads/{}.png", "a".repeat(64))).unwrap();
        check_path("tls/ca.key").unwrap();
        assert!(check_path("tls/other.key").is_err());
        assert!(check_path("tls/../kefud.db").is_err());
        let mut m = sample();
        m.files.push(m.files[0].clone());
        assert_eq!(
            Manifest::decode(&m.encode(), 7),
            Err(ManifestError::Duplicate("kefud.db".into()))
        );
        m.files.retain(|f| f.path != "kefud.db");
        assert_eq!(
            Manifest::decode(&m.encode(), 7),
            Err(ManifestError::NoStore)
        );
    }

    #[test]
    fn verify_names_the_difference() {
        let e = &sample().files[0];
        verify(e, 4096, &sha256_hex(b"db")).unwrap();
        assert!(verify(e, 4095, &sha256_hex(b"db"))
            .unwrap_err()
            .contains("4095 bytes"));
        assert!(verify(e, 4096, &sha256_hex(b"dc"))
            .unwrap_err()
            .contains("SHA-256"));
    }
}
