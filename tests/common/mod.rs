//! Test harness: the real `kefud` binary, started by the test kit's launcher
//! (`tools/testkit`, shared with the load tool) on a temporary data directory on loopback port
//! 0, and the HTTP and WebSocket clients the tests talk to it with.
//!
//! `KEFUD_BIN` overrides the binary (the aarch64 build under qemu-user runs these same tests).
#![allow(dead_code)]

pub mod cluster;
pub mod day_one;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kefud_testkit::{Daemon, Launch};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn kefud_bin() -> PathBuf {
    std::env::var_os("KEFUD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kefud")))
}

/// Writes `dir/kefud.toml` as the launcher does (loopback port 0, `dir/data`, `extra`).
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    kefud_testkit::write_config(dir, extra).unwrap()
}

/// A kefud under test: the kit's [`Daemon`] running this build's binary, whose failures to
/// start or stop fail the test with the log.
pub struct TestDaemon(Daemon);

impl std::ops::Deref for TestDaemon {
    type Target = Daemon;

    fn deref(&self) -> &Daemon {
        &self.0
    }
}

impl TestDaemon {
    /// Starts on `dir` (created if needed) with `extra` config; panics with the log on failure.
    pub fn start(dir: &Path, extra: &str) -> TestDaemon {
        Self::try_start(dir, extra).unwrap_or_else(|log| panic!("kefud did not start:\n{log}"))
    }

    /// Starts, or returns why not: the exit status and the daemon's output if it exits first.
    pub fn try_start(dir: &Path, extra: &str) -> Result<TestDaemon, String> {
        Self::try_start_with_env(dir, extra, &[])
    }

    /// As [`TestDaemon::try_start`], with extra environment variables.
    pub fn try_start_with_env(
        dir: &Path,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Result<TestDaemon, String> {
        let mut launch = Launch::new(kefud_bin()).dir(dir).config(extra);
        for (key, value) in env {
            launch = launch.env(key, value);
        }
        launch.start().map(TestDaemon).map_err(|e| format!("{e:#}"))
    }

    /// Starts with its open-files limit (soft and hard) set to `nofile`, via prlimit(1).
    pub fn start_with_nofile(dir: &Path, extra: &str, nofile: u64) -> TestDaemon {
        Launch::new(kefud_bin())
            .dir(dir)
            .config(extra)
            .nofile(nofile)
            .start()
            .map(TestDaemon)
            .unwrap_or_else(|e| panic!("kefud did not start:\n{e:#}"))
    }

    /// SIGTERM and wait (20 s at most); returns the exit status and the whole log.
    pub fn terminate(self) -> (ExitStatus, String) {
        self.0
            .terminate(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// SIGKILL: no chance to flush or sync anything.
    pub fn kill9(self) {
        self.0.kill9();
    }
}

/// Runs `kefud --config dir/kefud.toml ARGS` with `stdin` and returns (success, stdout+stderr).
pub fn kefud_cli(dir: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    let config = dir.join("kefud.toml");
    if !config.exists() {
        write_config(dir, "");
    }
    let mut child = Command::new(kefud_bin())
        .arg("--config")
        .arg(&config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn add_agent(dir: &Path, name: &str, password: &str, admin: bool) {
    let mut args = vec!["agent", "add", name, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    let (ok, out) = kefud_cli(dir, &args, &format!("{password}\n"));
    assert!(ok, "agent add failed: {out}");
}

pub async fn login(d: &TestDaemon, name: &str, password: &str) -> String {
    let resp = reqwest::Client::new()
        .post(d.http("/api/v1/login"))
        .json(&serde_json::json!({"username": name, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "login failed");
    resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    ws
}

pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON text frame (pings skipped), or panics after `secs`.
pub async fn next_json(ws: &mut Ws, secs: u64) -> Value {
    try_next_json(ws, secs)
        .await
        .expect("expected a frame before the timeout")
}

/// The next JSON text frame, or `None` on timeout or close.
pub async fn try_next_json(ws: &mut Ws, secs: u64) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match msg {
            Ok(Message::Text(t)) => {
                return Some(serde_json::from_str(t.as_str()).expect("server frames are JSON"))
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(other) => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads frames until one with `"type": ty` arrives; returns it and the frames skipped.
pub async fn next_of_type(ws: &mut Ws, ty: &str, secs: u64) -> (Value, Vec<Value>) {
    let mut skipped = Vec::new();
    loop {
        let v = next_json(ws, secs).await;
        if v["type"] == ty {
            return (v, skipped);
        }
        skipped.push(v);
    }
}

/// Sends one visitor message and waits for its ack: `Some(message_id)`, or `None` if the
/// connection ends first. An error frame fails the test.
pub async fn send_for_ack(ws: &mut Ws, client_id: &str, text: &str) -> Option<u64> {
    send_json(
        ws,
        serde_json::json!({"type": "message", "client_id": client_id, "text": text}),
    )
    .await;
    while let Some(f) = try_next_json(ws, 10).await {
        assert_ne!(f["type"], "error", "message {client_id} refused: {f}");
        if f["type"] == "ack" {
            return f["message_id"].as_u64();
        }
    }
    None
}

/// Every message of a visitor's thread, via a resume from 0.
pub async fn history(d: &TestDaemon, visitor: &str) -> Vec<Value> {
    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id={visitor}&after=0"))).await;
    assert_eq!(next_json(&mut ws, 10).await["type"], "welcome");
    let mut out = Vec::new();
    while let Some(v) = try_next_json(&mut ws, 1).await {
        out.push(v);
    }
    out
}

pub fn journal_segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("data/journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

pub async fn send_n(d: &TestDaemon, visitor: &str, n: usize, text_len: usize) {
    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id={visitor}"))).await;
    next_json(&mut ws, 5).await;
    for i in 0..n {
        send_json(&mut ws, serde_json::json!({"type": "message", "client_id": format!("{visitor}{i}"), "text": "y".repeat(text_len)})).await;
        next_of_type(&mut ws, "ack", 5).await;
    }
}

/// The store's files (kefud.db and its -wal/-shm), to put an older store back.
pub fn store_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Option<Vec<u8>>)> {
    ["kefud.db", "kefud.db-wal", "kefud.db-shm"]
        .iter()
        .map(|n| {
            let p = dir.join("data").join(n);
            let bytes = std::fs::read(&p).ok();
            (p, bytes)
        })
        .collect()
}

pub fn restore_store(saved: &[(std::path::PathBuf, Option<Vec<u8>>)]) {
    for (p, bytes) in saved {
        match bytes {
            Some(b) => std::fs::write(p, b).unwrap(),
            None => {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Every unlabelled figure of `/metrics`, by name.
pub async fn metrics(d: &TestDaemon) -> std::collections::HashMap<String, u64> {
    let text = reqwest::get(d.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Polls `/metrics` until `done` holds (10 s at most) and returns what it saw then.
pub async fn wait_for_metrics(
    d: &TestDaemon,
    what: &str,
    done: impl Fn(&std::collections::HashMap<String, u64>) -> bool,
) -> std::collections::HashMap<String, u64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = metrics(d).await;
        if done(&m) {
            return m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
