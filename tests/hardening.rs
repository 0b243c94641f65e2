//! An anonymous client against the real binary: login storms, parallel guessing, revoked
//! tokens on open feeds, connection floods with half-sent headers, and uploads under fresh
//! visitor ids. Each test reproduces an attack that used to work.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use kefud_testkit::proc;
use reqwest::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

async fn try_login(c: &Client, d: &TestDaemon, body: Value) -> (u16, Value) {
    let r = c
        .post(d.http("/api/v1/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_storm_keeps_memory_flat_and_the_box_responsive() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "right-password", true);
    // A limit this high lets every guess through the limiter: the gate alone must hold.
    let d = TestDaemon::start(dir.path(), "[auth]\nlogin_failures_per_minute = 1000\n");
    let admin = login(&d, "li", "right-password").await;
    let c = Client::new();
    let storm: Vec<_> = (0..200)
        .map(|i| {
            let (c, url) = (c.clone(), d.http("/api/v1/login"));
            tokio::spawn(async move {
                c.post(url)
                    .json(&json!({"username": format!("user{}", i % 7), "password": "guess-guess"}))
                    .timeout(Duration::from_secs(120))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // While it rages, an agent's ordinary request is answered (it never waits for Argon2).
    let me = c
        .get(d.http("/api/v1/me"))
        .bearer_auth(&admin)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    for r in storm {
        let status = r.await.unwrap().expect("every login is answered");
        assert!(
            status == 401 || status == 503,
            "a wrong password is refused or told to come back, got {status}"
        );
    }
    let peak = proc::status(d.pid(), "VmHWM").unwrap();
    // Two Argon2 checks at 12 MiB at a time; it was 1.2 GiB with 100 at once.
    assert!(
        peak < 160 * 1024,
        "peak RSS {peak} KiB under a login storm:\n{}",
        d.log()
    );
}

#[tokio::test]
async fn parallel_guesses_are_counted_before_the_check_and_devices_get_in() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "right-password", false);
    let d = TestDaemon::start(dir.path(), "[auth]\nlogin_failures_per_minute = 3\n");
    let c = Client::new();
    // An earlier login from the shop's browser left it a device proof.
    let (status, first) = try_login(
        &c,
        &d,
        json!({"username": "li", "password": "right-password"}),
    )
    .await;
    assert_eq!(status, 200);
    let device = first["device"].as_str().unwrap().to_string();

    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let (c, url) = (c.clone(), d.http("/api/v1/login"));
            tokio::spawn(async move {
                c.post(url)
                    .json(&json!({"username": "li", "password": format!("guess-{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut checked = 0;
    for g in guesses {
        match g.await.unwrap() {
            401 => checked += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        checked <= 3,
        "{checked} of 40 parallel guesses got a real password check"
    );
    // The account is blocked for a new browser, even with the right password ...
    let (status, _) = try_login(
        &c,
        &d,
        json!({"username": "li", "password": "right-password"}),
    )
    .await;
    assert_eq!(status, 429);
    // ... but the agent's own browser gets in, and a forged proof does not.
    let (status, body) = try_login(
        &c,
        &d,
        json!({"username": "li", "password": "right-password", "device": device}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut forged = device.clone();
    forged.replace_range(0..1, if device.starts_with('0') { "1" } else { "0" });
    let (status, _) = try_login(
        &c,
        &d,
        json!({"username": "li", "password": "right-password", "device": forged}),
    )
    .await;
    assert_eq!(status, 429);
    // A name of a megabyte is refused without hashing and without being remembered as such.
    let (status, _) = try_login(
        &c,
        &d,
        json!({"username": "x".repeat(200_000), "password": "whatever"}),
    )
    .await;
    assert!(status == 401 || status == 429);
}

async fn expect_close(feed: &mut Ws, secs: u64) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, feed.next()).await {
            Err(_) => panic!("the feed stayed open"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test]
async fn revoking_a_token_closes_its_open_feed() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "boss", "boss-password", true);
    add_agent(dir.path(), "li", "li-password", false);
    let d = TestDaemon::start(dir.path(), "");
    let c = Client::new();
    let boss = login(&d, "boss", "boss-password").await;

    // Disabled by an admin.
    let li = login(&d, "li", "li-password").await;
    let mut feed = connect(&d.ws(&format!("/ws/agent?token={li}"))).await;
    let me: Value = c
        .get(d.http("/api/v1/me"))
        .bearer_auth(&li)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = c
        .patch(d.http(&format!("/api/v1/agents/{}", me["id"])))
        .bearer_auth(&boss)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(expect_close(&mut feed, 10).await, Some(1008));
    let r = c
        .patch(d.http(&format!("/api/v1/agents/{}", me["id"])))
        .bearer_auth(&boss)
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Logged out (from another tab).
    let li = login(&d, "li", "li-password").await;
    let mut feed = connect(&d.ws(&format!("/ws/agent?token={li}"))).await;
    let r = c
        .post(d.http("/api/v1/logout"))
        .bearer_auth(&li)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(expect_close(&mut feed, 10).await, Some(1008));

    // Password reset by an admin.
    let li = login(&d, "li", "li-password").await;
    let mut feed = connect(&d.ws(&format!("/ws/agent?token={li}"))).await;
    let r = c
        .post(d.http(&format!("/api/v1/agents/{}/password", me["id"])))
        .bearer_auth(&boss)
        .json(&json!({"password": "a-new-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(expect_close(&mut feed, 10).await, Some(1008));

    // The admin's own feed is untouched by all of it.
    let mut own = connect(&d.ws(&format!("/ws/agent?token={boss}"))).await;
    let r = c
        .post(d.http("/api/v1/logout"))
        .bearer_auth(login(&d, "li", "a-new-password").await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), own.next())
            .await
            .is_err(),
        "another agent's logout must not close this feed"
    );
}

/// Opens a TCP connection from `local` (a loopback address) and sends half a request.
async fn half_request(d: &TestDaemon, local: &str) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(d.addr).await.ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .ok()?;
    Some(stream)
}

/// Whether the server closed `stream` (EOF or reset) within `secs`.
async fn closed_within(stream: &mut tokio::net::TcpStream, secs: u64) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(Duration::from_secs(secs), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_capped_and_the_journal_keeps_its_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    // 400 descriptors: the cap becomes 144 connections, 256 stay for everything else. Small
    // journal segments make the journal open new files while the flood holds its sockets.
    let d = TestDaemon::start_with_nofile(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout_secs = 3\nmax_connections_per_address = 5\n\n[journal]\nsegment_bytes = 65536\n\n[limits]\nmessages_per_second = 1000\nburst = 1000\n",
        400,
    );
    let mut visitors = Vec::new();
    for i in 0..3 {
        let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id=v{i}"))).await;
        next_of_type(&mut ws, "welcome", 10).await;
        visitors.push(ws);
    }
    // Per address: the sixth connection from 127.0.0.2 is closed at once.
    let mut from_one = Vec::new();
    for _ in 0..5 {
        from_one.push(half_request(&d, "127.0.0.2").await.expect("admitted"));
    }
    let mut sixth = half_request(&d, "127.0.0.2").await.expect("tcp accepts");
    assert!(
        closed_within(&mut sixth, 5).await,
        "over the per-address cap"
    );
    drop(from_one);

    // In total: 600 half-sent requests from the box itself (exempt from the per-address cap).
    let mut flood = Vec::new();
    for _ in 0..600 {
        if let Some(s) = half_request(&d, "127.0.0.1").await {
            flood.push(s);
        }
    }
    // Messages on the connections already open are still acknowledged, across many journal
    // segment rotations, with every other descriptor taken.
    let text = "x".repeat(4000);
    for n in 0..60 {
        for (i, ws) in visitors.iter_mut().enumerate() {
            let id = send_for_ack(ws, &format!("m{n}"), &text).await;
            assert!(id.is_some(), "visitor {i} message {n} not acknowledged");
        }
    }
    // Headers that never finish are cut after the header-read timeout, freeing the slots.
    let mut cut = 0;
    for s in flood.iter_mut().take(20) {
        if closed_within(s, 10).await {
            cut += 1;
        }
    }
    assert_eq!(cut, 20, "half-sent requests must time out");
    drop(flood);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = Client::new().get(d.http("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = Client::new()
        .get(d.http("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kefud_connections_refused_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(refused >= 400, "refused {refused}");
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
}

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

async fn upload_from(d: &TestDaemon, local: &str, visitor: &str, size: usize) -> u16 {
    let mut body = PNG.to_vec();
    body.resize(size, 0);
    let c = Client::builder()
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    c.post(d.http(&format!("/api/v1/visitor/uploads?visitor_id={visitor}")))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn fresh_visitor_ids_do_not_escape_the_upload_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        "[uploads]\nper_visitor_daily_mib = 1\nper_address_daily_mib = 2\ntotal_daily_mib = 3\n",
    );
    let kb300 = 300 * 1024;
    // One address, a new visitor id each time: refused past 2 MiB.
    let mut accepted = 0;
    for i in 0..10 {
        match upload_from(&d, "127.0.0.2", &format!("fresh-{i}"), kb300 + i).await {
            201 => accepted += 1,
            429 => break,
            other => panic!("status {other}"),
        }
    }
    assert_eq!(accepted, 6, "2 MiB / 300 KiB");
    // Another address still may, until the total is used up.
    let mut more = 0;
    for i in 0..10 {
        match upload_from(&d, "127.0.0.3", &format!("other-{i}"), kb300 + 100 + i).await {
            201 => more += 1,
            429 => break,
            other => panic!("status {other}"),
        }
    }
    assert_eq!(more, 4, "3 MiB in total");
}

async fn open_connections(c: &Client, d: &TestDaemon) -> u64 {
    let metrics = c
        .get(d.http("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("kefud_connections_open "))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn silent_visitor_sockets_are_pinged_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "[limits]\nvisitor_silence_secs = 3\n");
    let c = Client::new();
    let mut silent = connect(&d.ws("/ws/visitor?visitor_id=silent")).await;
    let mut alive = connect(&d.ws("/ws/visitor?visitor_id=alive")).await;
    next_of_type(&mut silent, "welcome", 10).await;
    next_of_type(&mut alive, "welcome", 10).await;
    let before = open_connections(&c, &d).await;
    // The live client reads (and so answers pings) the whole time; the silent one does not.
    let reading = tokio::spawn(async move {
        let until = tokio::time::Instant::now() + Duration::from_secs(7);
        while let Ok(frame) = tokio::time::timeout_at(until, alive.next()).await {
            match frame {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
                Some(Ok(_)) => {}
            }
        }
        true
    });
    // The server is done with the silent socket (closed after 3 s, its close unanswered) ...
    // waited for rather than timed: a loaded machine is late, never early.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while open_connections(&c, &d).await != before - 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent socket is still open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ... after pinging it first.
    match tokio::time::timeout(Duration::from_secs(5), silent.next()).await {
        Ok(Some(Ok(Message::Ping(_)))) => {}
        other => panic!("expected the ping first, got {other:?}"),
    }
    assert!(
        reading.await.unwrap(),
        "a visitor answering pings stays connected"
    );
}

/// A visitor who wrote, then went quiet past a ping (the connection lets go of its reply
/// channel then), is still acknowledged when writing again, and a resent message is still
/// recognised.
#[tokio::test]
async fn a_visitor_quiet_past_a_ping_can_write_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "[limits]\nvisitor_silence_secs = 3\n");
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=quiet")).await;
    next_of_type(&mut ws, "welcome", 10).await;
    let first = send_for_ack(&mut ws, "q1", "hello").await.unwrap();
    // Reading answers the ping (sent 1.2 s into the silence); nothing else arrives.
    let mut pinged = false;
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Ok(frame) = tokio::time::timeout_at(until, ws.next()).await {
        match frame {
            Some(Ok(Message::Ping(_))) => pinged = true,
            Some(Ok(Message::Text(t))) => assert!(t.contains("\"q1\""), "unexpected {t}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pinged, "the quiet visitor was pinged");
    let second = send_for_ack(&mut ws, "q2", "still here").await.unwrap();
    assert!(second > first);
    assert_eq!(send_for_ack(&mut ws, "q1", "hello").await, Some(first));
}

#[tokio::test]
async fn uploads_no_message_refers_to_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), "[uploads]\norphan_after_secs = 2\n");
    let c = Client::new();
    let upload = |body: Vec<u8>| {
        let (c, url) = (c.clone(), d.http("/api/v1/visitor/uploads?visitor_id=pics"));
        async move {
            let r = c.post(url).body(body).send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["upload"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let mut kept_bytes = PNG.to_vec();
    kept_bytes.extend_from_slice(b"kept");
    let mut orphan_bytes = PNG.to_vec();
    orphan_bytes.extend_from_slice(b"orphan");
    let kept = upload(kept_bytes).await;
    let orphan = upload(orphan_bytes).await;
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=pics")).await;
    next_of_type(&mut ws, "welcome", 10).await;
    send_json(
        &mut ws,
        json!({"type": "message", "client_id": "p1", "text": "", "attachment": kept}),
    )
    .await;
    next_of_type(&mut ws, "ack", 10).await;
    let token = login(&d, "li", "password-li").await;
    let status = |id: String| {
        let (c, url, token) = (
            c.clone(),
            d.http(&format!("/api/v1/uploads/{id}")),
            token.clone(),
        );
        async move {
            c.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(orphan.clone()).await, 200);
    let uploads = dir.path().join("data").join("uploads");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while uploads.join(&orphan).exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the orphan upload was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status(orphan).await, 404);
    assert_eq!(status(kept.clone()).await, 200, "an attached upload stays");
    assert!(uploads.join(&kept).exists());
}
