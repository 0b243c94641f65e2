use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    arm64: PathBuf,
    armhf: PathBuf,
    key: SecretKey,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let arm64 = dir.path().join("kefud_0.3.0-1_arm64.deb");
    let armhf = dir.path().join("kefud_0.3.0-1_armhf.deb");
    // Sizes that do and do not end on a tar block.
    std::fs::write(
        &arm64,
        (0..150_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(&armhf, vec![7u8; 1024]).unwrap();
    Fixture {
        _dir: dir,
        arm64,
        armhf,
        key: SecretKey::generate().unwrap(),
    }
}

fn bundle_of(f: &Fixture, key: &SecretKey, version: &str) -> Vec<u8> {
    let mut out = Vec::new();
    make(
        &mut out,
        key,
        version,
        &[
            (f.arm64.clone(), "arm64".into()),
            (f.armhf.clone(), "armhf".into()),
        ],
    )
    .unwrap();
    out
}

fn open_bytes(
    bytes: &[u8],
    key: &PublicKey,
    arch: &str,
) -> Result<(Verified, Vec<u8>), UpdateError> {
    let mut extracted = Vec::new();
    let v = open(&mut &bytes[..], key, "0.2.0", arch, Some(&mut extracted))?;
    Ok((v, extracted))
}

fn refusal(r: Result<(Verified, Vec<u8>), UpdateError>) -> Refusal {
    match r {
        Err(UpdateError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_signed_bundle_opens_and_gives_this_architectures_package() {
    let f = fixture();
    let bytes = bundle_of(&f, &f.key, "0.3.0");
    let (v, extracted) = open_bytes(&bytes, &f.key.public(), "arm64").unwrap();
    assert_eq!(v.manifest.version, "0.3.0");
    assert_eq!(v.package.architecture, "arm64");
    assert_eq!(extracted, std::fs::read(&f.arm64).unwrap());
    let (_, extracted) = open_bytes(&bytes, &f.key.public(), "armhf").unwrap();
    assert_eq!(extracted, std::fs::read(&f.armhf).unwrap());
}

#[test]
fn other_keys_changed_bytes_and_other_boxes_are_refused() {
    let f = fixture();
    let bytes = bundle_of(&f, &f.key, "0.3.0");
    let other = SecretKey::generate().unwrap();
    assert!(matches!(
        refusal(open_bytes(&bytes, &other.public(), "arm64")),
        Refusal::Forged(_)
    ));
    assert!(matches!(
        refusal(open_bytes(
            &bundle_of(&f, &other, "0.3.0"),
            &f.key.public(),
            "arm64"
        )),
        Refusal::Forged(_)
    ));
    // A byte of the manifest changed: the signature no longer matches.
    let mut changed = bytes.clone();
    let at = tar::BLOCK + 40;
    changed[at] ^= 1;
    assert!(matches!(
        refusal(open_bytes(&changed, &f.key.public(), "arm64")),
        Refusal::Forged(_) | Refusal::Malformed(_)
    ));
    // A byte of the package changed.
    let mut changed = bytes.clone();
    let at = bytes.len() - 2 * tar::BLOCK - 1024 - 2 * tar::BLOCK - 1000;
    changed[at] ^= 1;
    assert!(matches!(
        refusal(open_bytes(&changed, &f.key.public(), "arm64")),
        Refusal::Corrupt { .. }
    ));
    assert!(matches!(
        refusal(open_bytes(&bytes, &f.key.public(), "amd64")),
        Refusal::WrongArchitecture { .. }
    ));
    let old = bundle_of(&f, &f.key, "0.2.0");
    assert!(matches!(
        refusal(open_bytes(&old, &f.key.public(), "arm64")),
        Refusal::NotNewer { .. }
    ));
}

#[test]
fn unsigned_cut_short_and_padded_bundles_are_refused() {
    let f = fixture();
    let bytes = bundle_of(&f, &f.key, "0.3.0");
    let key = f.key.public();
    // Without manifest.sig: the manifest's entry, then the packages.
    let manifest_len = tar::parse_header(bytes[..tar::BLOCK].try_into().unwrap())
        .unwrap()
        .unwrap()
        .size as usize;
    let manifest_end = tar::BLOCK + manifest_len + tar::padding(manifest_len as u64).len();
    let unsigned = [
        &bytes[..manifest_end],
        &bytes[manifest_end + 2 * tar::BLOCK..],
    ]
    .concat();
    assert_eq!(
        refusal(open_bytes(&unsigned, &key, "arm64")),
        Refusal::Unsigned
    );
    for cut in [
        0,
        100,
        tar::BLOCK,
        bytes.len() / 2,
        bytes.len() - 2 * tar::BLOCK - 1,
    ] {
        assert!(
            matches!(
                refusal(open_bytes(&bytes[..cut], &key, "arm64")),
                Refusal::Malformed(_)
            ),
            "cut at {cut}"
        );
    }
    // An entry the manifest does not name, before the end.
    let end = bytes.len() - 2 * tar::BLOCK;
    let mut extra = bytes[..end].to_vec();
    extra.extend_from_slice(&tar::header("postinst.sh", 3, 0).unwrap());
    extra.extend_from_slice(b"rm\n");
    extra.extend_from_slice(tar::padding(3));
    extra.extend_from_slice(&tar::END);
    assert!(matches!(
        refusal(open_bytes(&extra, &key, "arm64")),
        Refusal::Malformed(_)
    ));
    // The package for this box twice (signed bytes both times): refused, not written twice.
    // The signature entry is one header and one block of base64.
    let package_start = manifest_end + 2 * tar::BLOCK;
    let package_len = 150_000 + tar::padding(150_000).len();
    let mut twice = bytes[..end].to_vec();
    twice.extend_from_slice(&bytes[package_start..package_start + tar::BLOCK + package_len]);
    twice.extend_from_slice(&tar::END);
    let Refusal::Malformed(why) = refusal(open_bytes(&twice, &key, "arm64")) else {
        panic!("a package twice was taken");
    };
    assert!(why.contains("twice"), "{why}");
}

#[test]
fn a_refused_bundle_leaves_no_extracted_file() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.kefu");
    let dest = dir.path().join("kefud.deb");
    std::fs::write(&path, bundle_of(&f, &f.key, "0.3.0")).unwrap();
    let other = SecretKey::generate().unwrap();
    assert!(open_file(&path, &other.public(), "0.2.0", "arm64", Some(&dest)).is_err());
    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    open_file(&path, &f.key.public(), "0.2.0", "arm64", Some(&dest)).unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&f.arm64).unwrap()
    );
}
