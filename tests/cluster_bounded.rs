//! Cluster mode's memory does not grow with the conversations other boxes have had: two kefud
//! boxes, each with its own mosquitto bridged to a central one (`common/cluster.rs`), real
//! processes on loopback.
//!
//! Thousands of box A's customers write and are resolved there, round after round; box B
//! holds a copy of each, closed there once resolved (after B's idle time). B's cluster
//! entries in memory (`kefud_dispatcher_cluster_entries`) come back down after every round
//! while its store holds every copy's name; a customer of an early round writing again on A
//! still lands in B's copy of that conversation, read back from B's store.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use reqwest::Client;
use serde_json::json;

const ROUNDS: usize = 4;
const PER_ROUND: usize = 500;

/// Runs `sql` (one integer) on `dir`'s store until it returns `want`, for at most
/// [`CONVERGE_WITHIN`]; returns the last answer.
fn wait_count(dir: &Path, sql: &str, want: i64) -> i64 {
    let db = dir.join("data").join("kefud.db");
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let conn = rusqlite::Connection::open_with_flags(&db, flags).unwrap();
        let n: i64 = conn.query_row(sql, [], |r| r.get(0)).unwrap();
        if n == want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ids(dir: &Path, sql: &str) -> Vec<u64> {
    let db = dir.join("data").join("kefud.db");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(&db, flags).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).unwrap();
    rows.map(|r| r.unwrap() as u64).collect()
}

async fn post(c: &Client, a: &Shop, key: &str, contact: &str, client_id: &str) {
    let r = c
        .post(a.d().http("/api/v1/inbox/kiosk/messages"))
        .header("X-Api-Key", key)
        .json(&json!({"contact_id": contact, "client_id": client_id, "text": "still open?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_closed_on_a_box_leave_its_memory_and_are_found_in_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = Brokers::start(dir.path(), 2);
    let a = Shop::start(dir.path().join("box0"), brokers.shops[0].port).await;
    let (ok, out) = kefud_cli(&a.dir, &["apikey", "add", "kiosk"], "");
    assert!(ok, "{out}");
    let key = out.lines().last().unwrap().trim().to_string();
    // B closes a resolved conversation after a second.
    let b_dir = dir.path().join("box1");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b_config = format!(
        "{}[conversations]\nresolved_idle_after_secs = 1\n",
        shop_config(brokers.shops[1].port)
    );
    write_config(&b_dir, &b_config);
    let b = TestDaemon::start(&b_dir, &b_config);
    let c = Client::new();
    let mut highest = 0;
    for round in 0..ROUNDS {
        for i in 0..PER_ROUND {
            post(&c, &a, &key, &format!("r{round}-{i}"), "c1").await;
        }
        let seen = ((round + 1) * PER_ROUND) as i64;
        let homes = "SELECT COUNT(*) FROM conversation_homes";
        assert_eq!(wait_count(&b_dir, homes, seen), seen, "round {round}");
        let waiting = "SELECT COUNT(*) FROM conversations WHERE status = 'waiting'";
        assert_eq!(
            wait_count(&a.dir, waiting, PER_ROUND as i64),
            PER_ROUND as i64
        );
        let m = metrics(&b).await;
        highest = highest.max(m["kefud_dispatcher_cluster_entries"]);
        for id in ids(
            &a.dir,
            "SELECT id FROM conversations WHERE status = 'waiting'",
        ) {
            a.post(&format!("/api/v1/conversations/{id}/resolve"), json!({}))
                .await;
        }
        let closed = "SELECT COUNT(*) FROM conversations WHERE status = 'idle'";
        assert_eq!(wait_count(&b_dir, closed, seen), seen, "round {round}");
        // The store has the closings at its next commit; the next tick lets go of them.
        wait_for_metrics(&b, "B's cluster entries down after the round", |m| {
            m["kefud_dispatcher_cluster_entries"] <= 8
        })
        .await;
    }
    assert!(
        highest >= PER_ROUND as u64,
        "a round's open copies were held: {highest}"
    );
    // A customer of the first round writes again on A (its conversation there reopens): B
    // finds its copy by the name in its store, and makes no second one.
    post(&c, &a, &key, "r0-7", "c2").await;
    let sql = "SELECT COUNT(*) FROM messages m JOIN conversation_homes h
               ON h.conversation_id = m.conversation_id
               WHERE m.sender = 'visitor' GROUP BY m.conversation_id ORDER BY COUNT(*) DESC LIMIT 1";
    assert_eq!(
        wait_count(&b_dir, sql, 2),
        2,
        "both messages in one copy on B"
    );
    let all = (ROUNDS * PER_ROUND) as i64;
    assert_eq!(
        wait_count(&b_dir, "SELECT COUNT(*) FROM conversations", all),
        all
    );
    assert_eq!(
        wait_count(&b_dir, "SELECT COUNT(*) FROM conversation_homes", all),
        all
    );
}
