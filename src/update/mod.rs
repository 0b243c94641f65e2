//! Signed update bundles: made by release builds (`kefud update bundle`), opened and checked
//! by kefud when an admin uploads one in the console and again by the root helper
//! (`kefud-update`, run by `kefud-update.service`) before it installs anything.
//!
//! Owns the reading and writing of the archive; what a bundle says and whether this box takes
//! it is in [`bundle`], the key files and signatures in [`key`].
//!
//! Invariants: [`open`] trusts nothing it has not checked: the manifest is the archive's
//! first entry and is parsed only after its signature (the second entry) verified with the
//! box's public key; the package is streamed through SHA-256 and its size, and a caller that
//! extracts it must discard the output when [`open`] fails. Entries the manifest does not
//! name are refused, never skipped.

pub mod bundle;
pub mod cli;
pub mod key;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::tar;
use bundle::{Manifest, Package, Refusal};
use key::{PublicKey, SecretKey};

/// Where the .deb and the image put the release key's public half.
pub const PUBLIC_KEY_PATH: &str = "/usr/share/kefud/update-key.pub";
/// The hand-over to the root helper (`kefud-update`), in kefud's state directory: kefud
/// writes [`PENDING`] (a checked bundle, renamed into place whole) or [`ROLLBACK_REQUESTED`];
/// the helper's path unit starts it, it takes the file away and checks the bundle again itself.
pub const SPOOL_DIR: &str = "/var/lib/kefud/updates";
pub const PENDING: &str = "pending.kefu";
pub const ROLLBACK_REQUESTED: &str = "rollback-requested";
/// The helper's report of its last run (JSON: state, version, from, message, at_ms), in a
/// directory only root writes.
pub const HELPER_STATUS: &str = "/var/lib/kefud-update/status.json";
/// The version the package kept for `kefud-rollback` (debian/postinst).
pub const PREVIOUS_VERSION: &str = "/usr/lib/kefud/previous/version";
/// The largest manifest and signature entries read.
const MAX_MANIFEST: u64 = 64 * 1024;
const MAX_SIGNATURE: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{0}: {1}")]
    Io(String, io::Error),
    #[error(transparent)]
    Key(#[from] key::KeyError),
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> UpdateError {
    let what = what.to_string();
    move |e| UpdateError::Io(what, e)
}

/// A bundle that passed every check, and the package this box installs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub manifest: Manifest,
    pub package: Package,
}

/// Reads the bundle from `reader`; checks its signature with `key`; chooses the package for
/// `arch` if the bundle is newer than `running`; streams that package, checked against the
/// manifest, into `extract` (when given) and reads the rest to the end of the archive.
///
/// # Errors
/// [`UpdateError::Refused`] with the reason; [`UpdateError::Io`] for a read or write that
/// failed (a bundle cut short is [`Refusal::Malformed`]).
pub fn open(
    reader: &mut impl Read,
    key: &PublicKey,
    running: &str,
    arch: &str,
    extract: Option<&mut dyn Write>,
) -> Result<Verified, UpdateError> {
    let mut discard = io::sink();
    let extract: &mut dyn Write = match extract {
        Some(w) => w,
        None => &mut discard,
    };
    let first = next_entry(reader)?.ok_or_else(|| malformed("empty archive"))?;
    if first.path != bundle::MANIFEST || first.size > MAX_MANIFEST {
        return Err(malformed(format!(
            "the first entry is {:?}, not a {} of at most {MAX_MANIFEST} bytes",
            first.path,
            bundle::MANIFEST
        )));
    }
    let manifest_bytes = read_entry(reader, first.size)?;
    let second = next_entry(reader)?;
    let signature = match second {
        Some(e) if e.path == bundle::SIGNATURE && e.size <= MAX_SIGNATURE => {
            read_entry(reader, e.size)?
        }
        _ => return Err(Refusal::Unsigned.into()),
    };
    let signature = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        String::from_utf8_lossy(&signature).trim(),
    )
    .map_err(|_| malformed("manifest.sig is not base64"))?;
    if !key.verifies(&manifest_bytes, &signature) {
        return Err(Refusal::Forged(key.fingerprint()).into());
    }
    let manifest = bundle::parse_manifest(&manifest_bytes)?;
    let package = bundle::choose(&manifest, running, arch)?.clone();
    let mut seen: Vec<String> = Vec::new();
    while let Some(entry) = next_entry(reader)? {
        if seen.contains(&entry.path) {
            return Err(malformed(format!(
                "{:?} is in the archive twice",
                entry.path
            )));
        }
        seen.push(entry.path.clone());
        let Some(listed) = manifest.packages.iter().find(|p| p.file == entry.path) else {
            return Err(malformed(format!(
                "{:?} is in the archive but not in the manifest",
                entry.path
            )));
        };
        if entry.size != listed.size {
            return Err(corrupt(&entry.path, "size"));
        }
        if listed.file == package.file {
            let digest = copy_entry(reader, entry.size, extract)?;
            if !digest.eq_ignore_ascii_case(&package.sha256) {
                return Err(corrupt(&entry.path, "SHA-256"));
            }
        } else {
            copy_entry(reader, entry.size, &mut io::sink())?;
        }
    }
    if !seen.contains(&package.file) {
        return Err(corrupt(&package.file, "missing from the archive"));
    }
    Ok(Verified { manifest, package })
}

/// [`open`] on a file, extracting the package to `extract_to` when given (written whole to
/// a temporary name, fsync'd and renamed; removed when the bundle is refused).
///
/// # Errors
/// As [`open`].
pub fn open_file(
    path: &Path,
    key: &PublicKey,
    running: &str,
    arch: &str,
    extract_to: Option<&Path>,
) -> Result<Verified, UpdateError> {
    let file = std::fs::File::open(path).map_err(io_err(path.display()))?;
    let mut reader = io::BufReader::with_capacity(64 * 1024, file);
    let Some(dest) = extract_to else {
        return open(&mut reader, key, running, arch, None);
    };
    let temp = PathBuf::from(format!("{}.partial", dest.display()));
    let mut out = std::fs::File::create(&temp).map_err(io_err(temp.display()))?;
    let result = open(&mut reader, key, running, arch, Some(&mut out)).and_then(|v| {
        out.sync_all().map_err(io_err(temp.display()))?;
        std::fs::rename(&temp, dest).map_err(io_err(dest.display()))?;
        Ok(v)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Writes a bundle of kefud `version` holding `packages` (each a .deb file and its Debian
/// architecture), signed with `key`.
///
/// # Errors
/// A package cannot be read, two share an architecture, or `out` cannot be written.
pub fn make(
    out: &mut impl Write,
    key: &SecretKey,
    version: &str,
    packages: &[(PathBuf, String)],
) -> Result<Manifest, UpdateError> {
    let mut listed = Vec::new();
    for (path, arch) in packages {
        if listed.iter().any(|p: &Package| &p.architecture == arch) {
            return Err(malformed(format!("two packages for {arch}")));
        }
        let mut file = std::fs::File::open(path).map_err(io_err(path.display()))?;
        let size = file.metadata().map_err(io_err(path.display()))?.len();
        let sha256 = stream(&mut file, size, &mut io::sink())?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        listed.push(Package {
            file: name,
            architecture: arch.clone(),
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        format: bundle::FORMAT.into(),
        version: version.into(),
        packages: listed,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    // What kefud would refuse is not written either.
    bundle::parse_manifest(&manifest_bytes)?;
    let signature = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        key.sign(&manifest_bytes),
    ) + "\n";
    let now = crate::clock::now_ms().max(0) as u64 / 1000;
    let mut put = |name: &str, size: u64, body: &mut dyn Read| -> Result<(), UpdateError> {
        let header = tar::header(name, size, now).map_err(|e| malformed(e.to_string()))?;
        out.write_all(&header).map_err(io_err("bundle"))?;
        let copied = io::copy(&mut body.take(size), out).map_err(io_err(name))?;
        if copied != size {
            return Err(malformed(format!("{name} changed while it was read")));
        }
        out.write_all(tar::padding(size)).map_err(io_err("bundle"))
    };
    put(
        bundle::MANIFEST,
        manifest_bytes.len() as u64,
        &mut &manifest_bytes[..],
    )?;
    put(
        bundle::SIGNATURE,
        signature.len() as u64,
        &mut signature.as_bytes(),
    )?;
    for ((path, _), p) in packages.iter().zip(&manifest.packages) {
        let mut file = std::fs::File::open(path).map_err(io_err(path.display()))?;
        put(&p.file, p.size, &mut file)?;
    }
    out.write_all(&tar::END).map_err(io_err("bundle"))?;
    out.flush().map_err(io_err("bundle"))?;
    Ok(manifest)
}

fn malformed(what: impl Into<String>) -> UpdateError {
    Refusal::Malformed(what.into()).into()
}

fn corrupt(file: &str, what: &str) -> UpdateError {
    Refusal::Corrupt {
        file: file.into(),
        what: what.into(),
    }
    .into()
}

/// The next entry's header, or `None` at the end of the archive.
fn next_entry(reader: &mut impl Read) -> Result<Option<tar::Entry>, UpdateError> {
    let mut block = [0u8; tar::BLOCK];
    read_exact(reader, &mut block)?;
    tar::parse_header(&block).map_err(|e| malformed(e.to_string()))
}

/// An entry of `size` bytes, whole (only for the small manifest and signature).
fn read_entry(reader: &mut impl Read, size: u64) -> Result<Vec<u8>, UpdateError> {
    let mut bytes = vec![0u8; size as usize];
    read_exact(reader, &mut bytes)?;
    skip_padding(reader, size)?;
    Ok(bytes)
}

/// Streams an entry of `size` bytes into `out` and past its padding; its SHA-256 in hex.
fn copy_entry(
    reader: &mut impl Read,
    size: u64,
    out: &mut dyn Write,
) -> Result<String, UpdateError> {
    let digest = stream(reader, size, out)?;
    skip_padding(reader, size)?;
    Ok(digest)
}

/// Streams `size` bytes into `out`; their SHA-256 in hex.
fn stream(reader: &mut impl Read, size: u64, out: &mut dyn Write) -> Result<String, UpdateError> {
    let mut hasher = Sha256::new();
    let mut left = size;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        read_exact(reader, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(io_err("the extracted package"))?;
        left -= n as u64;
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn skip_padding(reader: &mut impl Read, size: u64) -> Result<(), UpdateError> {
    let mut pad = [0u8; tar::BLOCK];
    let n = tar::padding(size).len();
    read_exact(reader, &mut pad[..n])
}

fn read_exact(reader: &mut impl Read, buf: &mut [u8]) -> Result<(), UpdateError> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => malformed("the archive ends too early (cut short?)"),
        _ => UpdateError::Io("bundle".into(), e),
    })
}

#[cfg(test)]
mod tests;
