//! `kefud update …`: the release key, making a bundle, checking one as this box would. Each
//! returns the line to print; files are written whole (a key never half-written, a secret
//! key never readable by others, a bundle renamed into place once complete).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::bundle::{self, Version};
use super::key::{PublicKey, SecretKey};
use super::{io_err, UpdateError};

/// `kefud update keygen PREFIX`.
///
/// # Errors
/// Either file exists already or cannot be written.
pub fn keygen(prefix: &Path) -> Result<String, UpdateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = SecretKey::generate()?;
    let (secret, public) = (with_suffix(prefix, "key"), with_suffix(prefix, "pub"));
    for (path, text, mode) in [
        (&secret, key.to_text(), 0o600),
        (&public, key.public().to_text(), 0o644),
    ] {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(io_err(path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_err(path.display()))?;
    }
    Ok(format!(
        "made key {}: secret {} (keep it off the box and out of the repository), public {}",
        key.public().fingerprint(),
        secret.display(),
        public.display()
    ))
}

/// `kefud update public-key --key FILE`.
///
/// # Errors
/// The file cannot be read or is not a secret key file.
pub fn public_key(secret: &Path) -> Result<String, UpdateError> {
    Ok(read_secret(secret)?.public().to_text())
}

/// `kefud update bundle --key FILE [--version V] --out FILE DEB...`.
///
/// # Errors
/// A .deb's name does not say kefud `version` and an architecture; a file cannot be read or
/// written.
pub fn bundle(
    secret: &Path,
    version: Option<&str>,
    out: &Path,
    debs: &[PathBuf],
) -> Result<String, UpdateError> {
    let key = read_secret(secret)?;
    let version = version.unwrap_or(env!("CARGO_PKG_VERSION"));
    if Version::parse(version).is_none() {
        return Err(super::malformed(format!("version {version:?}")));
    }
    let mut packages = Vec::new();
    for deb in debs {
        let name = deb
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let arch = deb_architecture(&name, version).ok_or_else(|| {
            super::malformed(format!(
                "{name}: not named kefud_{version}-REVISION_ARCH.deb (is it kefud {version}'s package?)"
            ))
        })?;
        packages.push((deb.clone(), arch.to_string()));
    }
    let temp = with_suffix(out, "partial");
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(&temp).map_err(io_err(temp.display()))?);
    let made = super::make(&mut file, &key, version, &packages).and_then(|m| {
        let file = file
            .into_inner()
            .map_err(|e| io_err(temp.display())(e.into_error()))?;
        file.sync_all().map_err(io_err(temp.display()))?;
        std::fs::rename(&temp, out).map_err(io_err(out.display()))?;
        Ok(m)
    });
    if made.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    let m = made?;
    Ok(format!(
        "wrote {}: kefud {} for {}, signed with key {}",
        out.display(),
        m.version,
        m.packages
            .iter()
            .map(|p| p.architecture.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        key.public().fingerprint()
    ))
}

/// `kefud update verify FILE [--key FILE] [--arch A] [--running V] [--extract-to FILE]`.
///
/// # Errors
/// The bundle is refused ([`bundle::Refusal`]), or a file cannot be read or written.
pub fn verify(
    file: &Path,
    public: &Path,
    arch: Option<&str>,
    running: Option<&str>,
    extract_to: Option<&Path>,
) -> Result<String, UpdateError> {
    let text = std::fs::read_to_string(public).map_err(io_err(public.display()))?;
    let key = PublicKey::parse(&text)?;
    let arch = arch.unwrap_or(bundle::this_architecture());
    let running = running.unwrap_or(env!("CARGO_PKG_VERSION"));
    let v = super::open_file(file, &key, running, arch, extract_to)?;
    Ok(format!(
        "verified: kefud {} for {} ({}, {} bytes), signed with key {}{}",
        v.manifest.version,
        v.package.architecture,
        v.package.file,
        v.package.size,
        key.fingerprint(),
        extract_to
            .map(|p| format!("; written to {}", p.display()))
            .unwrap_or_default()
    ))
}

fn read_secret(path: &Path) -> Result<SecretKey, UpdateError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path.display()))?;
    Ok(SecretKey::parse(&text)?)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", path.display()))
}

/// The architecture in a package name `kefud_VERSION-REVISION_ARCH.deb` of `version`.
fn deb_architecture<'n>(name: &'n str, version: &str) -> Option<&'n str> {
    let rest = name.strip_prefix(&format!("kefud_{version}-"))?;
    let stem = rest.strip_suffix(".deb")?;
    let (revision, arch) = stem.split_once('_')?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (plain(revision) && plain(arch)).then_some(arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_name_gives_its_architecture_for_its_version_only() {
        assert_eq!(
            deb_architecture("kefud_0.3.0-1_arm64.deb", "0.3.0"),
            Some("arm64")
        );
        assert_eq!(
            deb_architecture("kefud_0.3.0-1_armhf.deb", "0.3.0"),
            Some("armhf")
        );
        assert_eq!(deb_architecture("kefud_0.3.0-1_arm64.deb", "0.3.1"), None);
        assert_eq!(deb_architecture("kefud_0.3.0_arm64.deb", "0.3.0"), None);
        assert_eq!(deb_architecture("kefud_0.3.0-1_arm64.tar", "0.3.0"), None);
        assert_eq!(deb_architecture("other_0.3.0-1_arm64.deb", "0.3.0"), None);
    }

    #[test]
    fn keygen_writes_a_private_secret_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("release");
        keygen(&prefix).unwrap();
        let secret = dir.path().join("release.key");
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let public = public_key(&secret).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("release.pub")).unwrap(),
            public
        );
        assert!(keygen(&prefix).is_err());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("release.pub")).unwrap(),
            public
        );
    }
}
