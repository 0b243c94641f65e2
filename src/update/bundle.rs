//! What an update bundle says and whether this box takes it: the manifest, versions, and the
//! decision (pure; `update::open` does the reading).
//!
//! A bundle is a ustar archive: `manifest.json` first, `manifest.sig` (the Ed25519 signature
//! over the manifest's exact bytes, base64) second, then one .deb per architecture. The
//! manifest names each package's file, Debian architecture, size and SHA-256.
//!
//! Invariants: nothing in a bundle is trusted before its signature has been checked against
//! the box's public key; a bundle is taken only when it is newer than what runs and holds a
//! package for this box's architecture, whose bytes match the manifest.

use serde::{Deserialize, Serialize};

/// The manifest's `format`.
pub const FORMAT: &str = "kefud-update-1";
/// The archive's first two entries.
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// kefud's version (as `kefud --version` prints it).
    pub version: String,
    pub packages: Vec<Package>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The entry's name in the archive.
    pub file: String,
    /// Debian's name: arm64, armhf, amd64.
    pub architecture: String,
    pub size: u64,
    /// Hex.
    pub sha256: String,
}

/// Why a bundle is refused; each message tells a shop owner what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a kefud update bundle: {0}")]
    Malformed(String),
    #[error("the bundle is not signed (no manifest.sig): only bundles signed by kefud's release key are installed")]
    Unsigned,
    #[error("the bundle's signature is not from this box's release key ({0}): it was changed or made by someone else")]
    Forged(String),
    #[error("kefud {offered} is not newer than kefud {running}, which runs: to go back, use \"Roll back\" (kefud-rollback)")]
    NotNewer { offered: String, running: String },
    #[error("the bundle has no package for this box ({arch}); it has: {offered}")]
    WrongArchitecture { arch: String, offered: String },
    #[error("{file} does not match the manifest ({what}): the bundle is damaged")]
    Corrupt { file: String, what: String },
}

/// A version of three or more dot-separated numbers, compared number by number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(Vec<u64>);

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let parts: Option<Vec<u64>> = text
            .split('.')
            .map(|p| {
                (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse().ok())
                    .flatten()
            })
            .collect();
        parts.filter(|p| p.len() >= 3).map(Version)
    }
}

/// The Debian architecture this kefud was built for.
pub fn this_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "arm" => "armhf",
        "x86_64" => "amd64",
        other => other,
    }
}

/// The manifest's bytes parsed and checked for shape.
///
/// # Errors
/// [`Refusal::Malformed`].
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, Refusal> {
    let manifest: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| Refusal::Malformed(format!("manifest.json: {e}")))?;
    if manifest.format != FORMAT {
        return Err(Refusal::Malformed(format!(
            "format {:?} (this kefud reads {FORMAT:?})",
            manifest.format
        )));
    }
    if Version::parse(&manifest.version).is_none() {
        return Err(Refusal::Malformed(format!(
            "version {:?}",
            manifest.version
        )));
    }
    for p in &manifest.packages {
        let name_ok = !p.file.is_empty()
            && p.file.ends_with(".deb")
            && !p.file.contains('/')
            && p.file != MANIFEST
            && p.file != SIGNATURE;
        let hash_ok = p.sha256.len() == 64 && p.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !name_ok || !hash_ok {
            return Err(Refusal::Malformed(format!("package entry {:?}", p.file)));
        }
    }
    Ok(manifest)
}

/// Which package of a verified manifest this box installs, running `running` on `arch`.
///
/// # Errors
/// [`Refusal::NotNewer`], [`Refusal::WrongArchitecture`].
pub fn choose<'m>(
    manifest: &'m Manifest,
    running: &str,
    arch: &str,
) -> Result<&'m Package, Refusal> {
    let offered = Version::parse(&manifest.version);
    if let Some(now) = Version::parse(running) {
        if !offered.is_some_and(|v| v > now) {
            return Err(Refusal::NotNewer {
                offered: manifest.version.clone(),
                running: running.to_string(),
            });
        }
    }
    manifest
        .packages
        .iter()
        .find(|p| p.architecture == arch)
        .ok_or_else(|| Refusal::WrongArchitecture {
            arch: arch.to_string(),
            offered: if manifest.packages.is_empty() {
                "nothing".to_string()
            } else {
                manifest
                    .packages
                    .iter()
                    .map(|p| p.architecture.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str, arches: &[&str]) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: version.into(),
            packages: arches
                .iter()
                .map(|a| Package {
                    file: format!("kefud_{version}-1_{a}.deb"),
                    architecture: a.to_string(),
                    size: 10,
                    sha256: "ab".repeat(32),
                })
                .collect(),
        }
    }

    #[test]
    fn versions_compare_by_number() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("0.10.0") > v("0.9.9"));
        assert!(v("1.0.0") > v("0.99.99"));
        assert!(v("0.2.0.1") > v("0.2.0"));
        for bad in ["", "1.2", "1..2", "1.2.x", "1.2.3-rc1", "v1.2.3"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_package_for_this_box_is_chosen_only_from_a_newer_version() {
        let m = manifest("0.3.0", &["arm64", "armhf"]);
        assert_eq!(choose(&m, "0.2.0", "armhf").unwrap().architecture, "armhf");
        assert!(matches!(
            choose(&m, "0.3.0", "arm64"),
            Err(Refusal::NotNewer { .. })
        ));
        assert!(matches!(
            choose(&m, "0.10.0", "arm64"),
            Err(Refusal::NotNewer { .. })
        ));
        let Err(Refusal::WrongArchitecture { offered, .. }) = choose(&m, "0.2.0", "amd64") else {
            panic!("wrong architecture taken");
        };
        assert_eq!(offered, "arm64, armhf");
    }

    #[test]
    fn a_manifest_is_checked_for_shape() {
        let good = manifest("0.3.0", &["arm64"]);
        let bytes = serde_json::to_vec(&good).unwrap();
        assert_eq!(parse_manifest(&bytes).unwrap(), good);
        let mut other_format = good.clone();
        other_format.format = "kefud-update-9".into();
        let mut bad_version = good.clone();
        bad_version.version = "latest".into();
        let mut escaping = good.clone();
        escaping.packages[0].file = "../../etc/passwd.deb".into();
        let mut short_hash = good.clone();
        short_hash.packages[0].sha256 = "ab".into();
        for m in [other_format, bad_version, escaping, short_hash] {
            let bytes = serde_json::to_vec(&m).unwrap();
            assert!(matches!(parse_manifest(&bytes), Err(Refusal::Malformed(_))));
        }
        assert!(matches!(parse_manifest(b"{"), Err(Refusal::Malformed(_))));
    }
}
