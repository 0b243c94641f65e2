//! A full disk: the daemon stops acknowledging, exits non-zero with a clear message, and once
//! there is room again restarts with every acknowledged message. Needs root to mount a small
//! tmpfs (CI runs as root).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(path: &std::path::Path, size: &str) -> Mount {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(path.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn full_disk_stops_acks_exits_nonzero_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mount = Mount::tmpfs(&dir.path().join("data"), "1m");
    let cfg = "[journal]\nsegment_bytes = 65536\n[limits]\nmessages_per_second = 100000\nburst = 100000\n";
    let mut d = Some(TestDaemon::start(dir.path(), cfg));
    let daemon = d.as_ref().unwrap();
    let mut ws = connect(&daemon.ws("/ws/visitor?visitor_id=filler")).await;
    next_json(&mut ws, 5).await;
    let text = "d".repeat(3000);
    let mut acked = Vec::new();
    let started = Instant::now();
    for i in 0.. {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the disk never filled"
        );
        let ack = send_for_ack(&mut ws, &format!("d{i}"), &text).await;
        match ack {
            Some(id) => acked.push(id),
            None => break,
        }
    }
    assert!(acked.len() > 10, "some messages fit before the disk filled");
    // The daemon stops by itself, non-zero, saying why.
    let mut child_gone = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if !std::path::Path::new(&format!("/proc/{}", d.as_ref().unwrap().pid())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", d.as_ref().unwrap().pid()))
                .is_ok_and(|s| s.contains(") Z "))
        {
            child_gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child_gone,
        "daemon kept running on a full disk:\n{}",
        d.as_ref().unwrap().log()
    );
    let log = d.take().unwrap().log();
    // Whichever hits the wall first says so: the journal (ENOSPC) or SQLite.
    assert!(
        log.contains("No space left on device") || log.contains("database or disk is full"),
        "{log}"
    );
    assert!(log.contains("disk full or failing"), "{log}");

    // Room again: it starts, and every acknowledged message is there once.
    mount.resize("16m");
    let d = TestDaemon::start(dir.path(), cfg);
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=filler&after=0")).await;
    next_json(&mut ws, 5).await;
    let mut stored = Vec::new();
    while let Some(v) = try_next_json(&mut ws, 2).await {
        stored.push(v["message_id"].as_u64().unwrap());
    }
    for id in &acked {
        assert_eq!(
            stored.iter().filter(|s| *s == id).count(),
            1,
            "acknowledged {id} missing or doubled"
        );
    }
    drop(d);
}
