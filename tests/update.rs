//! `/api/v1/update` against the real binary: an admin uploads signed bundles made by `kefud
//! update bundle` with keys made by `kefud update keygen`; the accepted one is handed over in
//! the spool whole, refused ones (another key, unsigned, not newer, another architecture, cut
//! short, garbage) leave nothing there; agents who are not admins and strangers are refused; a
//! second upload waits for the helper. The root helper that installs a bundle is tested with
//! the real packages by scripts/test-update.sh.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version after this one (the next patch release).
fn next_version() -> String {
    let mut parts: Vec<u64> = VERSION.split('.').map(|p| p.parse().unwrap()).collect();
    *parts.last_mut().unwrap() += 1;
    parts
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// kefud's name for this machine's architecture, as Debian says it.
fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "arm" => "armhf",
        "x86_64" => "amd64",
        other => other,
    }
}

fn cli_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = kefud_cli(dir, args, "");
    assert!(ok, "kefud {args:?}: {out}");
    out
}

/// A package file named as cargo deb names them; kefud never looks inside it.
fn package(dir: &Path, version: &str, arch: &str) -> PathBuf {
    let path = dir.join(format!("kefud_{version}-1_{arch}.deb"));
    std::fs::write(
        &path,
        format!("a package of kefud {version} for {arch}").repeat(999),
    )
    .unwrap();
    path
}

fn bundle(dir: &Path, key: &Path, version: &str, arch: &str, name: &str) -> Vec<u8> {
    let deb = package(dir, version, arch);
    let out = dir.join(name);
    cli_ok(
        dir,
        &[
            "update",
            "bundle",
            "--key",
            key.to_str().unwrap(),
            "--version",
            version,
            "--out",
            out.to_str().unwrap(),
            deb.to_str().unwrap(),
        ],
    );
    std::fs::read(out).unwrap()
}

async fn upload(d: &TestDaemon, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(d.http("/api/v1/update"))
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn spool_entries(spool: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spool)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn admins_upload_signed_newer_bundles_for_this_box_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let release = keys.join("release");
    cli_ok(dir.path(), &["update", "keygen", release.to_str().unwrap()]);
    let other = keys.join("other");
    cli_ok(dir.path(), &["update", "keygen", other.to_str().unwrap()]);
    let spool = dir.path().join("spool");
    let d = TestDaemon::start(
        dir.path(),
        &format!(
            "[update]\npublic_key = \"{}\"\nspool_dir = \"{}\"\n",
            keys.join("release.pub").display(),
            spool.display()
        ),
    );
    add_agent(dir.path(), "owner", "an owner's long password", true);
    add_agent(dir.path(), "li", "an agent's long password", false);
    let admin = login(&d, "owner", "an owner's long password").await;
    let agent = login(&d, "li", "an agent's long password").await;
    let (secret, wrong) = (keys.join("release.key"), keys.join("other.key"));
    let next = next_version();
    let good = bundle(dir.path(), &secret, &next, this_arch(), "good.kefu");

    // What runs, and the key.
    let status: Value = reqwest::Client::new()
        .get(d.http("/api/v1/update"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["running"], VERSION);
    assert_eq!(status["architecture"], this_arch());
    assert_eq!(status["pending"], false);
    assert_eq!(status["key"].as_str().unwrap().len(), 16);

    // Who may not.
    assert_eq!(upload(&d, None, good.clone()).await.0, 401);
    assert_eq!(upload(&d, Some(&agent), good.clone()).await.0, 403);
    let resp = reqwest::Client::new()
        .get(d.http("/api/v1/update"))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // What is refused, and why.
    let unsigned = {
        // The manifest's entry, then the package's: manifest.sig left out.
        let manifest_len = usize::from_str_radix(
            std::str::from_utf8(&good[124..135])
                .unwrap()
                .trim_matches('\0'),
            8,
        )
        .unwrap();
        let manifest_end = 512 + manifest_len.div_ceil(512) * 512;
        [&good[..manifest_end], &good[manifest_end + 1024..]].concat()
    };
    let refusals = [
        (
            bundle(dir.path(), &wrong, &next, this_arch(), "forged.kefu"),
            "signature",
        ),
        (unsigned, "not signed"),
        (
            bundle(dir.path(), &secret, VERSION, this_arch(), "same.kefu"),
            "is not newer",
        ),
        (
            bundle(dir.path(), &secret, &next, "mips64el", "other-arch.kefu"),
            "no package for this box",
        ),
        (good[..good.len() / 2].to_vec(), "ends too early"),
        (
            b"not a bundle at all".repeat(100),
            "not a kefud update bundle",
        ),
        (Vec::new(), "not a kefud update bundle"),
    ];
    for (body, why) in refusals {
        let (status, reply) = upload(&d, Some(&admin), body).await;
        assert_eq!(status, 422, "{why}: {reply}");
        assert_eq!(reply["code"], "bundle_refused", "{reply}");
        assert!(
            reply["message"].as_str().unwrap().contains(why),
            "{why}: {reply}"
        );
        assert!(
            spool_entries(&spool).is_empty(),
            "{why}: {:?}",
            spool_entries(&spool)
        );
    }

    // The good one is handed over whole; the next upload waits for the helper.
    let (status, reply) = upload(&d, Some(&admin), good.clone()).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["version"], next.as_str());
    assert_eq!(spool_entries(&spool), vec!["pending.kefu".to_string()]);
    assert_eq!(std::fs::read(spool.join("pending.kefu")).unwrap(), good);
    let (status, reply) = upload(&d, Some(&admin), good.clone()).await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["code"], "update_waiting");
    let resp = reqwest::Client::new()
        .post(d.http("/api/v1/update/rollback"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "a rollback while an update waits");
    // The helper took it (as kefud-update does: it removes the file first).
    std::fs::remove_file(spool.join("pending.kefu")).unwrap();
    let (status, _) = upload(&d, Some(&admin), good).await;
    assert_eq!(status, 202);
}

#[test]
fn a_forged_bundle_fails_kefud_update_verify_and_extracts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (release, other) = (dir.path().join("release"), dir.path().join("other"));
    cli_ok(dir.path(), &["update", "keygen", release.to_str().unwrap()]);
    cli_ok(dir.path(), &["update", "keygen", other.to_str().unwrap()]);
    let next = next_version();
    bundle(
        dir.path(),
        &dir.path().join("other.key"),
        &next,
        "arm64",
        "forged.kefu",
    );
    bundle(
        dir.path(),
        &dir.path().join("release.key"),
        &next,
        "arm64",
        "good.kefu",
    );
    let out = dir.path().join("kefud.deb");
    let verify = |name: &str| {
        kefud_cli(
            dir.path(),
            &[
                "update",
                "verify",
                dir.path().join(name).to_str().unwrap(),
                "--key",
                dir.path().join("release.pub").to_str().unwrap(),
                "--arch",
                "arm64",
                "--extract-to",
                out.to_str().unwrap(),
            ],
            "",
        )
    };
    let (ok, said) = verify("forged.kefu");
    assert!(!ok && said.contains("signature"), "{said}");
    assert!(!out.exists());
    let (ok, said) = verify("good.kefu");
    assert!(ok && said.contains("verified"), "{said}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(dir.path().join(format!("kefud_{next}-1_arm64.deb"))).unwrap()
    );
}
