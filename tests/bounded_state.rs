//! Memory that does not grow with spam: contacts beyond the dispatcher's cache are evicted
//! and come back whole (idempotency, their conversation), and a waiting queue longer than
//! the scheduler's in-memory window is served from the store, across a restart too.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Client;
use serde_json::{json, Value};

fn api_key(dir: &std::path::Path) -> String {
    let (ok, out) = kefud_cli(dir, &["apikey", "add", "kiosk"], "");
    assert!(ok, "{out}");
    out.lines().last().unwrap().trim().to_string()
}

async fn post(c: &Client, d: &TestDaemon, key: &str, contact: &str, client_id: &str) -> u64 {
    let r = c
        .post(d.http("/api/v1/inbox/kiosk/messages"))
        .header("X-Api-Key", key)
        .json(&json!({"contact_id": contact, "client_id": client_id, "text": "有人在吗"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json::<Value>().await.unwrap()["message_id"]
        .as_u64()
        .unwrap()
}

/// Runs `sql` (one integer) on the store until it returns `want`, for at most 60 s.
fn wait_count(dir: &std::path::Path, sql: &str, want: i64) -> i64 {
    let db = dir.join("data").join("kefud.db");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let n: i64 = conn.query_row(sql, [], |r| r.get(0)).unwrap();
        if n == want || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_beyond_the_cache_are_evicted_and_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let key = api_key(dir.path());
    let d = TestDaemon::start(dir.path(), "[conversations]\ncached_contacts = 16\n");
    let c = Client::new();
    let mut first = Vec::new();
    for i in 0..300 {
        first.push(post(&c, &d, &key, &format!("spam-{i}"), "c1").await);
    }
    // Long evicted by now: a resend is still the same message, stored once ...
    for (i, id) in first.iter().enumerate() {
        assert_eq!(post(&c, &d, &key, &format!("spam-{i}"), "c1").await, *id);
    }
    // ... and a new message lands in the contact's open conversation.
    for i in 0..300 {
        post(&c, &d, &key, &format!("spam-{i}"), "c2").await;
    }
    assert_eq!(
        wait_count(
            dir.path(),
            "SELECT COUNT(*) FROM messages WHERE sender = 'visitor'",
            600
        ),
        600
    );
    // Memory holds 16 contacts, not 300: a few more while the store commits what they did,
    // evicted at the next command or the next second's tick once it has.
    wait_for_metrics(&d, "eviction down to about the cache's size", |m| {
        m["kefud_dispatcher_contacts"] <= 32
    })
    .await;
    assert_eq!(
        wait_count(dir.path(), "SELECT COUNT(*) FROM conversations", 300),
        300,
        "one conversation per contact"
    );
    assert_eq!(
        wait_count(
            dir.path(),
            "SELECT COUNT(*) FROM (SELECT conversation_id FROM messages WHERE sender = 'visitor'
             GROUP BY conversation_id HAVING COUNT(*) = 2)",
            300
        ),
        300
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_longer_than_the_window_is_served_from_the_store_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    add_agent(dir.path(), "wang", "password-wang", false);
    let key = api_key(dir.path());
    // 1,000 queued conversations are kept in memory per team; 1,150 wait.
    let waiting = 1150;
    {
        let d = TestDaemon::start(dir.path(), "[conversations]\ncached_contacts = 16\n");
        let c = Client::new();
        for i in 0..waiting {
            post(&c, &d, &key, &format!("q-{i}"), "c1").await;
        }
        assert_eq!(
            wait_count(
                dir.path(),
                "SELECT COUNT(*) FROM conversations WHERE queued_at IS NOT NULL AND assignee IS NULL",
                waiting
            ),
            waiting
        );
        let (status, log) = d.terminate();
        assert!(status.success(), "{log}");
    }
    let d = TestDaemon::start(dir.path(), "[conversations]\ncached_contacts = 16\n");
    let li = login(&d, "li", "password-li").await;
    let wang = login(&d, "wang", "password-wang").await;
    let c = Client::new();
    for agent in [1, 2] {
        let r = c
            .patch(d.http(&format!("/api/v1/agents/{agent}")))
            .bearer_auth(&li)
            .json(&json!({"capacity": 1000}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Both agents come online: everything is assigned, the oldest first.
    // Their consoles read their feeds (1,150 assignments are more than a feed's queue holds).
    for token in [&li, &wang] {
        let mut feed = connect(&d.ws(&format!("/ws/agent?token={token}"))).await;
        tokio::spawn(
            async move { while futures_util::StreamExt::next(&mut feed).await.is_some() {} },
        );
    }
    assert_eq!(
        wait_count(
            dir.path(),
            "SELECT COUNT(*) FROM conversations WHERE status = 'in_progress' AND assignee IS NOT NULL",
            waiting
        ),
        waiting,
        "{}",
        d.log()
    );
}
