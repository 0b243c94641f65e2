//! `kefud backup` and `kefud restore` against the real binary: a backup taken while visitors'
//! messages are being acknowledged, restored into another data directory and started there;
//! damaged, newer and misplaced restores refused.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Small segments, no retention beyond what the store needs, frequent commits and
/// checkpoints: the store snapshot is somewhere in the middle of the journal, which rotates
/// and deletes segments while the backup lists and reads them.
const BUSY_JOURNAL: &str = "[journal]\nsegment_bytes = 65536\nretain_segments = 0\n\n\
                            [store]\ncommit_interval_ms = 20\ncheckpoint_interval_secs = 1\n\n\
                            [limits]\nmessages_per_second = 100000\nburst = 100000\n";

/// Every conversation (by id) with its messages, as the agent API shows them.
async fn projection(d: &TestDaemon, token: &str) -> BTreeMap<u64, (Value, Vec<Value>)> {
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http.get(d.http(&path)).bearer_auth(token);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.json::<Value>().await.unwrap()
        }
    };
    let list = get("/api/v1/conversations?status=all&limit=500".into()).await;
    let mut out = BTreeMap::new();
    for c in list["conversations"].as_array().unwrap() {
        let id = c["id"].as_u64().unwrap();
        let msgs = get(format!("/api/v1/conversations/{id}/messages?limit=1000")).await;
        out.insert(
            id,
            (c.clone(), msgs["messages"].as_array().unwrap().to_vec()),
        );
    }
    out
}

fn messages_by_id(p: &BTreeMap<u64, (Value, Vec<Value>)>) -> BTreeMap<u64, Value> {
    p.values()
        .flat_map(|(_, m)| m.iter())
        .map(|m| (m["id"].as_u64().unwrap(), m.clone()))
        .collect()
}

/// `DIR/kefud.toml` naming `DIR/data`, with `DIR` created.
fn configure(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    write_config(dir, "");
}

/// `kefud --config DIR/kefud.toml ARGS`, run off the async runtime.
async fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let (dir, args): (std::path::PathBuf, Vec<String>) =
        (dir.into(), args.iter().map(|s| s.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kefud_cli(&dir, &args, "")
    })
    .await
    .unwrap()
}

/// Restores `backup` into a fresh `dir/data` and starts kefud on it.
async fn restore_and_start(dir: &Path, backup: &Path) -> TestDaemon {
    configure(dir);
    let (ok, out) = cli(dir, &["restore", backup.to_str().unwrap()]).await;
    assert!(ok, "restore failed: {out}");
    TestDaemon::start(dir, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_every_acknowledged_message() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let d = TestDaemon::start(&origin, BUSY_JOURNAL);
    add_agent(&origin, "auditor", "a-long-password", true);

    // Four visitors, each message waited for until acknowledged, sending until the backup has
    // ended (so the load overlaps it however slow the machine is; at most 2,000 each).
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let backup_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for v in 0..4 {
        let (url, acked, backup_done) = (
            d.ws(&format!("/ws/visitor?visitor_id=bk{v}")),
            acked.clone(),
            backup_done.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            next_json(&mut ws, 5).await;
            for i in 0..2_000 {
                let text = format!("visitor {v} message {i} {}", "x".repeat(200));
                let id = send_for_ack(&mut ws, &format!("c{i}"), &text)
                    .await
                    .expect("acknowledged");
                acked.lock().unwrap().push(id);
                if backup_done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 240 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acked_before: Vec<u64> = acked.lock().unwrap().clone();
    let during = tmp.path().join("during");
    let (ok, out) = cli(&origin, &["backup", during.to_str().unwrap()]).await;
    assert!(ok, "backup failed: {out}");
    eprintln!("{out}");
    backup_done.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let acked_total = acked.lock().unwrap().len();
    let token = login(&d, "auditor", "a-long-password").await;
    let original = projection(&d, &token).await;
    let original_messages = messages_by_id(&original);
    assert_eq!(original_messages.len(), acked_total);

    // Restored from the backup taken under load: every message acknowledged before it began,
    // and the rest a prefix of the original's, identical message by message.
    let r = restore_and_start(&tmp.path().join("restored"), &during).await;
    let restored_token = login(&r, "auditor", "a-long-password").await;
    let restored = messages_by_id(&projection(&r, &restored_token).await);
    for id in &acked_before {
        assert!(
            restored.contains_key(id),
            "message {id}, acknowledged before the backup began, is missing"
        );
    }
    let last = *restored.keys().last().unwrap();
    let expected: BTreeMap<u64, Value> = original_messages
        .iter()
        .filter(|(id, _)| **id <= last)
        .map(|(id, m)| (*id, m.clone()))
        .collect();
    assert_eq!(
        restored, expected,
        "the restored messages are the original's up to {last}"
    );
    drop(r);

    // A backup of the quiet daemon restores to the identical projection.
    let quiet = tmp.path().join("quiet");
    let (ok, out) = cli(&origin, &["backup", quiet.to_str().unwrap()]).await;
    assert!(ok, "backup failed: {out}");
    let r = restore_and_start(&tmp.path().join("restored-quiet"), &quiet).await;
    let restored_token = login(&r, "auditor", "a-long-password").await;
    assert_eq!(projection(&r, &restored_token).await, original);
    // The restored daemon goes on from where the backup ended.
    let mut ws = connect(&r.ws("/ws/visitor?visitor_id=bk0")).await;
    next_json(&mut ws, 5).await;
    let id = send_for_ack(&mut ws, "after-restore", "hello again")
        .await
        .unwrap();
    assert!(id > *original_messages.keys().last().unwrap());
}

/// A small backup of a daemon that received a few messages.
async fn small_backup(tmp: &Path) -> std::path::PathBuf {
    let origin = tmp.join("origin");
    let d = TestDaemon::start(&origin, "");
    send_n(&d, "v1", 5, 20).await;
    let dest = tmp.join("backup");
    let (ok, out) = cli(&origin, &["backup", dest.to_str().unwrap()]).await;
    assert!(ok, "backup failed: {out}");
    assert!(out.contains("backed up"), "{out}");
    dest
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test]
async fn a_damaged_backup_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let good = small_backup(tmp.path()).await;
    let segment = std::fs::read_dir(good.join("journal"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let segment = format!("journal/{}", segment.to_str().unwrap());
    for (n, file) in ["kefud.db", segment.as_str(), "manifest.json"]
        .iter()
        .enumerate()
    {
        let bad = tmp.path().join(format!("bad{n}"));
        copy_dir(&good, &bad);
        let path = bad.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x20;
        std::fs::write(&path, bytes).unwrap();
        let target = tmp.path().join(format!("target{n}"));
        configure(&target);
        let (ok, out) = cli(&target, &["restore", bad.to_str().unwrap()]).await;
        assert!(!ok, "a flipped byte in {file} was restored: {out}");
        assert!(
            out.contains(file.rsplit('/').next().unwrap()) && out.contains("damaged"),
            "the refusal names {file}: {out}"
        );
        assert!(
            !target.join("data").exists(),
            "nothing is written for a damaged backup"
        );
    }
}

#[tokio::test]
async fn restore_refuses_a_non_empty_data_directory_and_a_missing_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let good = small_backup(tmp.path()).await;
    let target = tmp.path().join("target");
    configure(&target);
    std::fs::create_dir_all(target.join("data")).unwrap();
    std::fs::write(target.join("data/notes.txt"), "mine").unwrap();
    let (ok, out) = cli(&target, &["restore", good.to_str().unwrap()]).await;
    assert!(!ok && out.contains("is not empty"), "{out}");
    assert_eq!(
        std::fs::read_to_string(target.join("data/notes.txt")).unwrap(),
        "mine"
    );

    let unfinished = tmp.path().join("unfinished");
    copy_dir(&good, &unfinished);
    std::fs::remove_file(unfinished.join("manifest.json")).unwrap();
    std::fs::remove_file(target.join("data/notes.txt")).unwrap();
    let (ok, out) = cli(&target, &["restore", unfinished.to_str().unwrap()]).await;
    assert!(!ok && out.contains("no manifest.json"), "{out}");

    // A backup goes only into a new or empty directory.
    let origin = tmp.path().join("origin");
    let (ok, out) = cli(&origin, &["backup", good.to_str().unwrap()]).await;
    assert!(!ok && out.contains("is not empty"), "{out}");
}

/// Rewrites a backup's manifest as if it had been made at `created_at_ms`.
fn age_backup(dir: &Path, created_at_ms: i64) {
    use sha2::Digest;
    let path = dir.join("manifest.json");
    let envelope: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut manifest = envelope["manifest"].clone();
    manifest["created_at_ms"] = created_at_ms.into();
    let body = manifest.to_string();
    let sha: String = sha2::Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = format!(r#"{{"format":"kefud-backup","sha256":"{sha}","manifest":{body}}}"#);
    std::fs::write(&path, text).unwrap();
}

fn backup_dirs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("kefud-backup-"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_daemon_takes_scheduled_backups_and_prunes_old_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let backups = tmp.path().join("backups");
    let d = TestDaemon::start(&origin, "");
    send_n(&d, "v1", 3, 10).await;
    for (name, at) in [
        ("kefud-backup-19990101T000000Z", 0),
        ("kefud-backup-19990102T000000Z", 86_400_000),
    ] {
        let dest = backups.join(name);
        let (ok, out) = cli(&origin, &["backup", dest.to_str().unwrap()]).await;
        assert!(ok, "{out}");
        age_backup(&dest, at);
    }
    std::fs::create_dir_all(backups.join("kefud-backup-19990103T000000Z.partial")).unwrap();
    std::fs::write(backups.join("notes.txt"), "the shop's own file").unwrap();
    let (status, _) = d.terminate();
    assert!(status.success());

    let schedule = format!(
        "[backup]\ndirectory = {:?}\ninterval_secs = 3600\nkeep = 2\n",
        backups.display().to_string()
    );
    let d = TestDaemon::start(&origin, &schedule);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let dirs = loop {
        let dirs = backup_dirs(&backups);
        // The directory is renamed into place before the line is logged: wait for both.
        let logged = d.log().contains("scheduled backup taken");
        if logged && dirs.len() == 2 && !dirs[1].starts_with("kefud-backup-1999") {
            break dirs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled backup: {dirs:?}\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dirs[0], "kefud-backup-19990102T000000Z", "the oldest went");
    assert!(backups.join("notes.txt").exists(), "other files stay");
    // The new one restores.
    let r = restore_and_start(&tmp.path().join("restored"), &backups.join(&dirs[1])).await;
    assert_eq!(history(&r, "v1").await.len(), 3);
}

#[tokio::test]
async fn admins_download_a_backup_as_a_tar_that_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let d = TestDaemon::start(&origin, "");
    add_agent(&origin, "owner", "a-long-password", true);
    add_agent(&origin, "clerk", "a-long-password", false);
    send_n(&d, "v1", 4, 10).await;
    let http = reqwest::Client::new();
    let clerk = login(&d, "clerk", "a-long-password").await;
    let resp = http
        .get(d.http("/api/v1/backup"))
        .bearer_auth(&clerk)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = http.get(d.http("/api/v1/backup")).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    let owner = login(&d, "owner", "a-long-password").await;
    let resp = http
        .get(d.http("/api/v1/backup"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-tar");
    let tar = resp.bytes().await.unwrap();
    let archive = tmp.path().join("backup.tar");
    std::fs::write(&archive, &tar).unwrap();
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let first = listing.lines().next().unwrap();
    assert!(
        first.starts_with("kefud-backup-") && first.ends_with("/manifest.json"),
        "the manifest comes first: {listing}"
    );
    let extracted = tmp.path().join("extracted");
    std::fs::create_dir_all(&extracted).unwrap();
    let ok = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&extracted)
        .status()
        .unwrap();
    assert!(ok.success());
    let top = extracted.join(first.split('/').next().unwrap());
    assert!(
        !origin.join("data/backup-download").exists()
            || std::fs::read_dir(origin.join("data/backup-download"))
                .unwrap()
                .next()
                .is_none(),
        "the download's copy is deleted once sent"
    );
    let r = restore_and_start(&tmp.path().join("restored"), &top).await;
    assert_eq!(history(&r, "v1").await.len(), 4);
}

#[test]
fn check_config_names_bad_backup_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "[backup]\ndirectory = \"relative/dir\"\ninterval_secs = 5\nkeep = 0\n",
    );
    let out = std::process::Command::new(kefud_bin())
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["backup.directory", "backup.interval_secs", "backup.keep"] {
        assert!(err.contains(key), "{key} not named: {err}");
    }
}
