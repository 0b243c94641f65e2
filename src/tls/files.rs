//! The certificates on disk, in `DATA_DIR/tls/`: `ca.key`, `ca.crt`, `server.key`,
//! `server.crt` (PEM) and `state.json` (what `renew.rs` decides with: the CA's name and
//! fingerprint, the server certificate's names and validity).
//!
//! Invariants:
//! - Keys are 0600 from their creation; every file is written to a temporary name, fsync'd
//!   and renamed over the old one, and the directory fsync'd after, so a power cut leaves the
//!   old file or the new one, never a torn one.
//! - `state.json` is written last: a CA exists once it names one. A first start cut short
//!   before it starts again from nothing, which is right, since no device can trust a CA that
//!   was never served.
//! - A CA that `state.json` names but that cannot be read back, or whose certificate is not
//!   the one recorded, is an error, never replaced silently: every device that trusts it would
//!   stop trusting the box. A server certificate that cannot be read back is merely made
//!   again.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::KeyPair;
use serde::{Deserialize, Serialize};

use super::issue::{sha256_hex, Ca, Server};
use super::names::Names;
use super::renew::{CaFacts, ServerFacts};
use super::TlsError;

pub const DIR: &str = "tls";

/// The files of [`DIR`] a backup keeps (`crate::backup`), and whether each is a private key
/// (0600 wherever it is written). The CA above all: every device of the shop trusts it.
pub const FILES: [(&str, bool); 5] = [
    ("ca.key", true),
    ("ca.crt", false),
    ("server.key", true),
    ("server.crt", false),
    ("state.json", false),
];

/// Whether `name` is a file of [`DIR`] that holds a private key.
pub fn is_key(name: &str) -> bool {
    FILES.iter().any(|(n, key)| *n == name && *key)
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    ca: CaRecord,
    server: Option<ServerRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CaRecord {
    common_name: String,
    not_after: i64,
    sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ServerRecord {
    names: Names,
    not_before: i64,
    not_after: i64,
    ca_sha256: String,
}

/// What is on disk: the CA if there is one, and a server certificate that reads back whole.
pub struct Stored {
    pub ca: Option<Ca>,
    pub server: Option<Server>,
}

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

fn damaged(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::Damaged(format!(
        "{}: {why} (restore it from a backup, or delete the directory {} to make a new CA that every device must trust again)",
        path.display(),
        path.parent().map(Path::display).map(|d| d.to_string()).unwrap_or_default()
    ))
}

/// Reads what `DATA_DIR/tls` holds.
///
/// # Errors
/// [`TlsError::Io`] for a directory that cannot be read, [`TlsError::Damaged`] for a CA that
/// `state.json` names and that cannot be read back as it was made.
pub fn load(data_dir: &Path) -> Result<Stored, TlsError> {
    let dir = dir(data_dir);
    let state_path = dir.join("state.json");
    let text = match std::fs::read_to_string(&state_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Stored {
                ca: None,
                server: None,
            })
        }
        Err(source) => {
            return Err(TlsError::Io {
                path: state_path,
                source,
            })
        }
    };
    let state: State = serde_json::from_str(&text).map_err(|e| damaged(&state_path, e))?;
    let ca_key_path = dir.join("ca.key");
    let ca_key = std::fs::read(&ca_key_path).map_err(|e| damaged(&ca_key_path, e))?;
    let key = one_key(&ca_key)
        .ok_or_else(|| damaged(&ca_key_path, "no private key"))
        .and_then(|der| KeyPair::try_from(der.as_slice()).map_err(|e| damaged(&ca_key_path, e)))?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_pem = std::fs::read(&ca_cert_path).map_err(|e| damaged(&ca_cert_path, e))?;
    let cert_der = one_cert(&ca_pem).ok_or_else(|| damaged(&ca_cert_path, "no certificate"))?;
    if sha256_hex(&cert_der) != state.ca.sha256 {
        return Err(damaged(
            &ca_cert_path,
            "not the certificate state.json records",
        ));
    }
    let ca = Ca {
        common_name: state.ca.common_name,
        key,
        cert_der,
        facts: CaFacts {
            not_after: state.ca.not_after,
            sha256: state.ca.sha256,
        },
    };
    let server = state.server.and_then(|record| {
        let key_der = one_key(&std::fs::read(dir.join("server.key")).ok()?)?;
        let cert_der = one_cert(&std::fs::read(dir.join("server.crt")).ok()?)?;
        Some(Server {
            key_der,
            cert_der,
            facts: ServerFacts {
                names: record.names,
                not_before: record.not_before,
                not_after: record.not_after,
                ca_sha256: record.ca_sha256,
            },
        })
    });
    Ok(Stored {
        ca: Some(ca),
        server,
    })
}

fn one_cert(pem: &[u8]) -> Option<Vec<u8>> {
    rustls_pemfile::certs(&mut &pem[..])
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

/// The PKCS#8 DER of the private key in a PEM file.
fn one_key(pem: &[u8]) -> Option<Vec<u8>> {
    rustls_pemfile::private_key(&mut &pem[..])
        .ok()
        .flatten()
        .map(|k| k.secret_der().to_vec())
}

/// The PEM text of a certificate.
pub fn cert_pem(der: &[u8]) -> String {
    pem("CERTIFICATE", der)
}

/// `der` as PEM under `label` (RFC 7468: base64 in lines of 64).
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("invariant: base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes `ca` (when `new_ca`) and `server`, then `state.json`, each atomically.
///
/// # Errors
/// [`TlsError::Io`] naming the file that could not be written.
pub fn save(data_dir: &Path, ca: &Ca, new_ca: bool, server: &Server) -> Result<(), TlsError> {
    let dir = dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Io {
        path: dir.clone(),
        source,
    })?;
    if new_ca {
        write_atomic(
            &dir,
            "ca.key",
            pem("PRIVATE KEY", ca.key.serialized_der()).as_bytes(),
            mode("ca.key"),
        )?;
        write_atomic(&dir, "ca.crt", cert_pem(&ca.cert_der).as_bytes(), 0o644)?;
    }
    write_atomic(
        &dir,
        "server.key",
        pem("PRIVATE KEY", &server.key_der).as_bytes(),
        mode("server.key"),
    )?;
    write_atomic(
        &dir,
        "server.crt",
        cert_pem(&server.cert_der).as_bytes(),
        0o644,
    )?;
    let state = State {
        ca: CaRecord {
            common_name: ca.common_name.clone(),
            not_after: ca.facts.not_after,
            sha256: ca.facts.sha256.clone(),
        },
        server: Some(ServerRecord {
            names: server.facts.names.clone(),
            not_before: server.facts.not_before,
            not_after: server.facts.not_after,
            ca_sha256: server.facts.ca_sha256.clone(),
        }),
    };
    let json = serde_json::to_vec_pretty(&state).expect("invariant: the state serializes");
    write_atomic(&dir, "state.json", &json, 0o644)?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| TlsError::Io { path: dir, source })
}

/// The mode a file of [`DIR`] is created with.
pub fn mode(name: &str) -> u32 {
    if is_key(name) {
        0o600
    } else {
        0o644
    }
}

/// `dir/name` replaced by `bytes` whole: a temporary file created with `mode`, fsync'd,
/// renamed over it.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let io = |source| TlsError::Io {
        path: path.clone(),
        source,
    };
    // A temporary file left by a cut write may have another mode: start afresh.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::issue::{new_ca, new_server};
    use super::super::names::wanted;
    use super::*;

    #[test]
    fn saved_certificates_load_back_with_private_keys() {
        let data = tempfile::tempdir().unwrap();
        let empty = load(data.path()).unwrap();
        assert!(empty.ca.is_none() && empty.server.is_none());
        let ca = new_ca("kefud test local CA").unwrap();
        let server = new_server(&ca, &wanted(Some("pi"), &[]), 1_800_000_000).unwrap();
        save(data.path(), &ca, true, &server).unwrap();
        let stored = load(data.path()).unwrap();
        let (ca2, server2) = (stored.ca.unwrap(), stored.server.unwrap());
        assert_eq!(ca2.cert_der, ca.cert_der);
        assert_eq!(ca2.facts, ca.facts);
        assert_eq!(ca2.common_name, ca.common_name);
        assert_eq!(server2.facts, server.facts);
        assert_eq!(server2.key_der, server.key_der);
        assert_eq!(ca2.key.serialized_der(), ca.key.serialized_der());
        let dir = dir(data.path());
        for key in ["ca.key", "server.key"] {
            let mode = std::fs::metadata(dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        // No temporary file is left behind.
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));
    }

    #[test]
    fn a_damaged_ca_is_an_error_and_a_damaged_server_certificate_is_made_again() {
        let data = tempfile::tempdir().unwrap();
        let ca = new_ca("kefud test local CA").unwrap();
        let server = new_server(&ca, &wanted(None, &[]), 1_800_000_000).unwrap();
        save(data.path(), &ca, true, &server).unwrap();
        let dir = dir(data.path());
        std::fs::write(dir.join("server.crt"), "junk").unwrap();
        let stored = load(data.path()).unwrap();
        assert!(stored.ca.is_some() && stored.server.is_none());
        let other = new_ca("other").unwrap();
        std::fs::write(dir.join("ca.crt"), cert_pem(&other.cert_der)).unwrap();
        let err = load(data.path()).err().unwrap().to_string();
        assert!(
            err.contains("ca.crt") && err.contains("not the certificate"),
            "{err}"
        );
        std::fs::remove_file(dir.join("ca.key")).unwrap();
        let err = load(data.path()).err().unwrap().to_string();
        assert!(err.contains("ca.key"), "{err}");
    }
}
