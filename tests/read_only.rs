//! The data directory's file system goes read-only under traffic, as ext4 `errors=remount-ro`
//! does on a failing SD card: kefud acknowledges nothing more, says why in the log, exits
//! non-zero, and after fsck restarts with every acknowledged message. Real ext4 on a loop
//! device, the error raised through ext4's own `trigger_fs_error`; needs root (CI runs as
//! root) and skips, saying so, where loop devices or ext4 are unavailable.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// An ext4 image loop-mounted with `errors=remount-ro`.
struct Ext4 {
    image: PathBuf,
    at: PathBuf,
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Ext4 {
    fn make(image: &Path, at: &Path) -> Result<Ext4, String> {
        let f = std::fs::File::create(image).map_err(|e| e.to_string())?;
        f.set_len(32 << 20).map_err(|e| e.to_string())?;
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()])?;
        let fs = Ext4 {
            image: image.to_path_buf(),
            at: at.to_path_buf(),
        };
        fs.mount()?;
        Ok(fs)
    }

    fn mount(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.at).map_err(|e| e.to_string())?;
        run(
            "mount",
            &[
                "-o",
                "loop,errors=remount-ro",
                self.image.to_str().unwrap(),
                self.at.to_str().unwrap(),
            ],
        )
    }

    /// What ext4 does on a metadata or journal error: abort and remount read-only.
    fn fail(&self) {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let at = self.at.canonicalize().unwrap();
        let dev = mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(at.to_str().unwrap()))
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .trim_start_matches("/dev/")
            .to_string();
        std::fs::write(format!("/sys/fs/ext4/{dev}/trigger_fs_error"), "test").unwrap();
    }

    /// Unmounts, repairs with fsck, mounts again read-write.
    fn fsck_and_remount(&self) {
        run("umount", &[self.at.to_str().unwrap()]).unwrap();
        // Exit 1: errors corrected.
        let status = Command::new("e2fsck")
            .args(["-f", "-y", self.image.to_str().unwrap()])
            .output()
            .unwrap()
            .status;
        assert!(status.code().is_some_and(|c| c <= 1), "e2fsck {status}");
        self.mount().unwrap();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn make_or_skip(image: &Path, at: &Path) -> Option<Ext4> {
    match Ext4::make(image, at) {
        Ok(fs) => Some(fs),
        Err(e) => {
            eprintln!(
                "SKIPPED: cannot loop-mount an ext4 image here (needs root and loop devices): {e}"
            );
            None
        }
    }
}

fn wait_exit(d: &TestDaemon) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", d.pid()));
        if stat.map_or(true, |s| s.contains(") Z ")) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The ids stored for `visitor`, via a resume from 0.
async fn stored(d: &TestDaemon, visitor: &str) -> Vec<u64> {
    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id={visitor}&after=0"))).await;
    next_json(&mut ws, 5).await;
    let mut ids = Vec::new();
    while let Some(v) = try_next_json(&mut ws, 2).await {
        ids.push(v["message_id"].as_u64().unwrap());
    }
    ids
}

/// Asks `/healthz` as fast as it can until the daemon stops listening; returns every
/// non-200 answer's body.
fn poll_healthz(addr: std::net::SocketAddr) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                break;
            };
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if !out.starts_with("HTTP/1.1 200") && !out.is_empty() {
                seen.push(out);
            }
        }
        seen
    })
}

const CFG: &str = "[limits]\nmessages_per_second = 100000\nburst = 100000\n";

#[tokio::test]
async fn read_only_remount_stops_acks_exits_nonzero_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = make_or_skip(&dir.path().join("data.img"), &dir.path().join("data")) else {
        return;
    };
    let d = TestDaemon::start(dir.path(), CFG);
    let health = poll_healthz(d.addr);
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=ro")).await;
    next_json(&mut ws, 5).await;
    let mut acked = Vec::new();
    for i in 0.. {
        if i == 50 {
            fs.fail();
        }
        match send_for_ack(&mut ws, &format!("ro{i}"), "hello from a shop").await {
            Some(id) => acked.push(id),
            None => break,
        }
        assert!(i < 10_000, "still acknowledging on a read-only file system");
    }
    assert!(acked.len() >= 50, "{}", acked.len());
    assert!(wait_exit(&d), "kept running read-only:\n{}", d.log());
    let log = d.log();
    // Whichever writes first notices: the journal (EROFS, "Read-only file system") or the
    // store (SQLite's "disk I/O error"); both name the read-only file system.
    assert!(log.contains("file system is read-only"), "{log}");
    assert!(log.contains("acknowledging nothing more"), "{log}");
    assert!(log.contains("kefud stopped"), "{log}");
    let (status, _) = d.terminate();
    assert_eq!(status.code(), Some(1), "{log}");
    for body in health.join().unwrap() {
        assert!(body.starts_with("HTTP/1.1 503"), "{body}");
        assert!(
            body.contains("read-only") || body.contains("stopping"),
            "{body}"
        );
        eprintln!(
            "/healthz while stopping: {}",
            body.lines().last().unwrap_or("")
        );
    }

    fs.fsck_and_remount();
    let d = TestDaemon::start(dir.path(), CFG);
    let ids = stored(&d, "ro").await;
    for id in &acked {
        assert_eq!(
            ids.iter().filter(|s| *s == id).count(),
            1,
            "acknowledged {id}"
        );
    }
}

/// Only the store's file system fails (the journal is on another): the store applier's
/// failure stops the daemon too, and a restart replays what the store missed.
#[tokio::test]
async fn read_only_store_stops_the_daemon_and_the_journal_replays() {
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = make_or_skip(&dir.path().join("store.img"), &dir.path().join("data")) else {
        return;
    };
    let journal = Ext4::make(
        &dir.path().join("journal.img"),
        &dir.path().join("data/journal"),
    )
    .unwrap();
    let d = TestDaemon::start(dir.path(), CFG);
    let mut acked = send_until_refused_after(&d, &store).await;
    assert!(wait_exit(&d), "kept running without a store:\n{}", d.log());
    let log = d.log();
    assert!(log.contains("store applier failed"), "{log}");
    assert!(log.contains("SQLite store failed"), "{log}");
    let (status, _) = d.terminate();
    assert_eq!(status.code(), Some(1), "{log}");

    run("umount", &[journal.at.to_str().unwrap()]).unwrap();
    store.fsck_and_remount();
    journal.mount().unwrap();
    let d = TestDaemon::start(dir.path(), CFG);
    let ids = stored(&d, "st").await;
    acked.sort_unstable();
    for id in &acked {
        assert_eq!(
            ids.iter().filter(|s| *s == id).count(),
            1,
            "acknowledged {id}"
        );
    }
}

/// 50 acknowledged messages, then the store's file system fails, then messages until one is
/// not acknowledged; returns the acknowledged ids.
async fn send_until_refused_after(d: &TestDaemon, store: &Ext4) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=st")).await;
    next_json(&mut ws, 5).await;
    for i in 0.. {
        if i == 50 {
            store.fail();
        }
        match send_for_ack(&mut ws, &format!("st{i}"), "hello").await {
            Some(id) => acked.push(id),
            None => break,
        }
        assert!(i < 10_000, "still running without a store");
    }
    assert!(acked.len() >= 50, "{}", acked.len());
    acked
}
