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

/// Sends `text` and returns the frame that answers it: an ack or an error.
async fn answer_to(ws: &mut Ws, client_id: &str, text: &str) -> serde_json::Value {
    send_json(
        ws,
        serde_json::json!({"type": "message", "client_id": client_id, "text": text}),
    )
    .await;
    loop {
        let f = next_json(ws, 10).await;
        if f["type"] == "ack" || f["type"] == "error" {
            return f;
        }
    }
}

fn hangup(d: &TestDaemon) {
    d.signal(libc::SIGHUP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_live_keys_keeps_connections_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let d = TestDaemon::try_start_with_env(
        dir.path(),
        "",
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    )
    .unwrap_or_else(|log| panic!("{log}"));
    wait_for(&sock, "READY=1", 10);
    let mut opened_before = connect(&d.ws("/ws/visitor?visitor_id=before")).await;
    next_of_type(&mut opened_before, "welcome", 5).await;

    // A valid file: the new text limit applies to new connections; open ones keep theirs.
    write_config(dir.path(), "[limits]\nmax_text_chars = 5\n");
    hangup(&d);
    let reloading = wait_for(&sock, "RELOADING=1", 10);
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready = wait_for(&sock, "READY=1", 10);
    assert!(ready.contains("STATUS=config reloaded"), "{ready}");
    let mut opened_after = connect(&d.ws("/ws/visitor?visitor_id=after")).await;
    let refused = answer_to(&mut opened_after, "a1", "too long").await;
    assert_eq!(refused["code"], "text_too_long", "{refused}");
    let acked = answer_to(&mut opened_before, "b1", "too long").await;
    assert_eq!(acked["type"], "ack", "{acked}");

    // A broken file is refused; the daemon and the running configuration stay.
    std::fs::write(
        dir.path().join("kefud.toml"),
        "[limits]\nmax_text_chars = \"many\"\n",
    )
    .unwrap();
    hangup(&d);
    wait_for(&sock, "RELOADING=1", 10);
    let refused_status = wait_for(&sock, "READY=1", 10);
    assert!(
        refused_status.contains("STATUS=reload refused")
            && refused_status.contains("max_text_chars"),
        "{refused_status}"
    );
    let still = answer_to(&mut opened_after, "a2", "123456").await;
    assert_eq!(still["code"], "text_too_long", "{still}");
    let fine = answer_to(&mut opened_after, "a3", "12345").await;
    assert_eq!(fine["type"], "ack", "{fine}");

    // A restart-only key is kept at its running value and named.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(
        dir.path().join("kefud.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = {:?}\n",
            elsewhere.display().to_string()
        ),
    )
    .unwrap();
    hangup(&d);
    let kept = wait_for(&sock, "READY=1", 10);
    assert!(kept.contains("restart to apply storage.data_dir"), "{kept}");
    assert!(!elsewhere.exists());
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("config reload refused"), "{log}");
}

/// A reload that shortens `resolved_idle_after_secs` while a resolved conversation waits to
/// close: its old deadline must go with it when it reopens (a stale one once fired on a closed
/// conversation and stopped the dispatcher).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_the_idle_timeout_leaves_no_stale_deadline() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(
        dir.path(),
        "[conversations]\nresolved_idle_after_secs = 3\n",
    );
    let token = login(&d, "li", "password-li").await;
    let c = reqwest::Client::new();
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=idle")).await;
    next_of_type(&mut ws, "welcome", 5).await;
    assert!(send_for_ack(&mut ws, "i1", "hello").await.is_some());
    let list: serde_json::Value = c
        .get(d.http("/api/v1/conversations?status=all"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["conversations"][0]["id"].as_u64().unwrap();
    let resolve = || {
        c.post(d.http(&format!("/api/v1/conversations/{id}/resolve")))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(resolve().await.unwrap().status(), 200);
    write_config(
        dir.path(),
        "[conversations]\nresolved_idle_after_secs = 1\n",
    );
    hangup(&d);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(send_for_ack(&mut ws, "i2", "one more thing")
        .await
        .is_some());
    assert_eq!(resolve().await.unwrap().status(), 200);
    // Past both the new and the old deadline: the dispatcher still answers.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        send_for_ack(&mut ws, "i3", "a new question")
            .await
            .is_some(),
        "{}",
        d.log()
    );
    let list: serde_json::Value = c
        .get(d.http("/api/v1/conversations?status=all"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["waiting", "idle"], "{list}");
}

/// A store whose search index an import left unfinished (an import stopped part way: its
/// messages stored, `meta.search_backlog_from` marking the first not indexed) is indexed before
/// READY, and the start timeout is extended while that goes on.
#[test]
fn a_search_index_left_by_a_stopped_import_is_finished_before_ready() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let csv = dir.path().join("history.csv");
    std::fs::write(
        &csv,
        "contact,sender,text,time\n\
         t-1,customer,first imported question,2024-05-01 10:00:00\n\
         t-1,agent,first imported answer,2024-05-01 10:01:00\n\
         t-2,customer,second imported question,2024-05-02 09:00:00\n",
    )
    .unwrap();
    let out = std::process::Command::new(kefud_bin())
        .arg("--config")
        .arg(&config)
        .args(["import", "history"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let db = dir.path().join("data/kefud.db");
    let indexed = |db: &std::path::Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM messages_fts_docsize", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(indexed(&db), 3, "the import indexed its messages");
    // As an import stopped before its end leaves the store.
    let first: i64 = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')")
            .unwrap();
        let first = conn
            .query_row("SELECT MIN(id) FROM messages", [], |r| r.get(0))
            .unwrap();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('search_backlog_from', ?1)",
            [first],
        )
        .unwrap();
        first
    };
    assert!(first > 0);
    assert_eq!(indexed(&db), 0);

    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let d = TestDaemon::try_start_with_env(
        dir.path(),
        "",
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let extended = wait_for(&sock, "EXTEND_TIMEOUT_USEC=90000000", 10);
    assert!(
        extended.contains("STATUS=indexing imported messages for search: 3 done"),
        "{extended}"
    );
    wait_for(&sock, "READY=1", 10);
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(indexed(&db), 3, "indexed before READY");
}
