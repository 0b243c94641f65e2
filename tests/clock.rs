//! The wall clock steps while kefud runs (a Pi without a real-time clock, set by NTP after
//! boot): a clock the test controls (libfaketime, whose offset the test rewrites) jumps 1,000
//! days forward and then two days back. Nothing is refused, nothing reorders, timers do not
//! fire early, and tokens keep the lifetime they were given.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use reqwest::Client;
use serde_json::{json, Value};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// libfaketime fakes the x86-64 binary's clock; the aarch64 one under qemu-user cannot load it.
fn faketime() -> Option<PathBuf> {
    let lib = PathBuf::from(LIBFAKETIME);
    // Under cross testing the test itself is built for the board and runs under qemu-user.
    if !cfg!(target_arch = "x86_64") || std::env::var_os("KEFUD_BIN").is_some() || !lib.exists() {
        eprintln!("clock test skipped: needs {LIBFAKETIME} and the host's own binary");
        return None;
    }
    Some(lib)
}

async fn steps(c: &Client, d: &TestDaemon) -> u64 {
    let text = c
        .get(d.http("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("kefud_clock_steps_total "))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Sets the fake clock's offset and waits until kefud has seen the step.
async fn jump(c: &Client, d: &TestDaemon, file: &Path, offset: &str, seen: u64) {
    std::fs::write(file, offset).unwrap();
    for _ in 0..100 {
        if steps(c, d).await >= seen {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "kefud did not notice the clock step to {offset}:\n{}",
        d.log()
    );
}

async fn get(c: &Client, d: &TestDaemon, token: &str, path: &str) -> (u16, Value) {
    let r = c.get(d.http(path)).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_steps_reorder_nothing_refuse_nothing_and_fire_no_timer() {
    let Some(lib) = faketime() else { return };
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let clock_file = dir.path().join("faketime");
    std::fs::write(&clock_file, "-1000d").unwrap();
    let d = TestDaemon::try_start_with_env(
        dir.path(),
        "[conversations]\nresolved_idle_after_secs = 3600\n",
        &[
            ("LD_PRELOAD", lib.to_str().unwrap()),
            ("FAKETIME_TIMESTAMP_FILE", clock_file.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    )
    .unwrap_or_else(|log| panic!("kefud did not start:\n{log}"));
    let c = Client::new();
    let token = login(&d, "li", "password-li").await;
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=v1")).await;
    next_of_type(&mut ws, "welcome", 10).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            send_for_ack(&mut ws, &format!("a{i}"), &format!("before {i}"))
                .await
                .unwrap(),
        );
    }
    let (_, convs) = get(&c, &d, &token, "/api/v1/conversations?status=all").await;
    let conv = convs["conversations"][0]["id"].as_u64().unwrap();
    let r = c
        .post(d.http(&format!("/api/v1/conversations/{conv}/resolve")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // NTP sets the clock: 1,000 days forward.
    jump(&c, &d, &clock_file, "+0", 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, me) = get(&c, &d, &token, "/api/v1/me").await;
    assert_eq!(status, 200, "the token keeps its 12 hours: {me}");
    let (_, view) = get(&c, &d, &token, &format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(
        view["status"], "resolved",
        "an hour's idle timer must not fire because the clock jumped 1,000 days: {view}"
    );
    for i in 0..3 {
        ids.push(
            send_for_ack(&mut ws, &format!("b{i}"), &format!("after {i}"))
                .await
                .unwrap(),
        );
    }

    // Then two days back.
    jump(&c, &d, &clock_file, "-2d", 2).await;
    for i in 0..3 {
        ids.push(
            send_for_ack(&mut ws, &format!("c{i}"), &format!("back {i}"))
                .await
                .unwrap(),
        );
    }
    let (status, _) = get(&c, &d, &token, "/api/v1/me").await;
    assert_eq!(status, 200);

    // Every message acknowledged, ids only growing, the thread in the order sent.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let (_, thread) = get(
        &c,
        &d,
        &token,
        &format!("/api/v1/conversations/{conv}/messages"),
    )
    .await;
    let texts: Vec<&str> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender"] == "visitor")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "before 0", "before 1", "before 2", "after 0", "after 1", "after 2", "back 0",
            "back 1", "back 2"
        ]
    );
    assert!(d.log().contains("the wall clock stepped"), "{}", d.log());
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
}
