//! The systemd notify protocol, against a notify socket this test opens itself (CI has no
//! systemd as PID 1).

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// Datagrams until one contains `want`, or panics after `secs`.
fn wait_for(sock: &UnixDatagram, want: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 4096];
    let mut seen = String::new();
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.lines().any(|l| l == want) {
                return msg;
            }
            seen.push_str(&msg);
            seen.push('|');
        }
    }
    panic!("no {want} within {secs} s; saw {seen:?}");
}

#[test]
fn ready_after_listening_watchdog_while_healthy_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notify = path.to_str().unwrap();
    let d = TestDaemon::try_start_with_env(
        dir.path(),
        "",
        &[("NOTIFY_SOCKET", notify), ("WATCHDOG_USEC", "400000")],
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let ready = wait_for(&sock, "READY=1", 10);
    assert!(ready.contains("STATUS=listening on"), "{ready}");
    // READY came after the listener was bound: the port answers.
    assert!(std::net::TcpStream::connect(d.addr).is_ok());
    wait_for(&sock, "WATCHDOG=1", 5);
    wait_for(&sock, "WATCHDOG=1", 5);
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
    wait_for(&sock, "STOPPING=1", 5);
}
