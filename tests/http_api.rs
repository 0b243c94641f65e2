//! The agent API and the agents' live feed, against the real binary.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

async fn visitor_says(d: &TestDaemon, visitor: &str, client_id: &str, text: &str) -> u64 {
    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id={visitor}"))).await;
    next_json(&mut ws, 5).await;
    send_json(
        &mut ws,
        json!({"type": "message", "client_id": client_id, "text": text}),
    )
    .await;
    next_of_type(&mut ws, "ack", 5).await.0["message_id"]
        .as_u64()
        .unwrap()
}

async fn get(c: &Client, d: &TestDaemon, token: &str, path: &str) -> (StatusCode, Value) {
    let r = c.get(d.http(path)).bearer_auth(token).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(
    c: &Client,
    d: &TestDaemon,
    token: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = c
        .post(d.http(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_endpoint_needs_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    let c = Client::new();
    let gets = [
        "/api/v1/conversations",
        "/api/v1/conversations/1",
        "/api/v1/conversations/1/messages",
        "/api/v1/me",
        "/api/v1/agents",
        "/api/v1/search?q=x",
    ];
    let posts = [
        "/api/v1/conversations/1/messages",
        "/api/v1/conversations/1/assign",
        "/api/v1/conversations/1/resolve",
        "/api/v1/conversations/1/reopen",
        "/api/v1/logout",
    ];
    for token in [None, Some("nonsense"), Some(&"a".repeat(64)[..])] {
        for p in gets {
            let mut r = c.get(d.http(p));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 401, "GET {p} with {token:?}");
            assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");
        }
        for p in posts {
            let mut r = c.post(d.http(p)).json(&json!({"text": "x"}));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            assert_eq!(
                r.send().await.unwrap().status(),
                401,
                "POST {p} with {token:?}"
            );
        }
    }
    let ws = tokio_tungstenite::connect_async(d.ws("/ws/agent"))
        .await
        .unwrap_err();
    assert!(matches!(ws, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401));
}

#[tokio::test]
async fn wrong_password_is_refused_and_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "right-password", false);
    let d = TestDaemon::start(dir.path(), "[auth]\nlogin_failures_per_minute = 3\n");
    let c = Client::new();
    for _ in 0..3 {
        let r = c
            .post(d.http("/api/v1/login"))
            .json(&json!({"username": "li", "password": "wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<Value>().await.unwrap()["code"],
            "invalid_credentials"
        );
    }
    let r = c
        .post(d.http("/api/v1/login"))
        .json(&json!({"username": "li", "password": "right-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "blocked even with the right password for a minute"
    );
    let r = c
        .post(d.http("/api/v1/login"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "bad_json");
}

#[tokio::test]
async fn conversation_lifecycle_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    add_agent(dir.path(), "wang", "password-wang", false);
    // Assignment by hand: the scheduler would give the conversation to li, whose feed is open.
    let d = TestDaemon::start(dir.path(), "[routing]\nauto_assign = false\n");
    let c = Client::new();
    let li = login(&d, "li", "password-li").await;
    let wang = login(&d, "wang", "password-wang").await;
    let (_, me) = get(&c, &d, &wang, "/api/v1/me").await;
    let wang_id = me["id"].as_u64().unwrap();

    // The agent feed, from the start.
    let mut feed = connect(&d.ws(&format!("/ws/agent?token={li}"))).await;

    let first = visitor_says(&d, "shopper", "s1", "Where is order 10423?").await;
    let (status, list) = get(&c, &d, &li, "/api/v1/conversations?status=waiting").await;
    assert_eq!(status, 200);
    let conv = &list["conversations"][0];
    assert_eq!(conv["status"], "waiting");
    assert_eq!(conv["external_id"], "shopper");
    assert_eq!(conv["channel"], "web");
    assert_eq!(conv["last_message"], "Where is order 10423?");
    let id = conv["id"].as_u64().unwrap();
    let (m, _) = next_of_type(&mut feed, "message", 5).await;
    assert_eq!(
        (
            m["message"]["id"].as_u64(),
            m["message"]["conversation_id"].as_u64()
        ),
        (Some(first), Some(id))
    );

    // Reply: 201 after durable; the conversation is now in progress and li's.
    let (status, r) = post(
        &c,
        &d,
        &li,
        &format!("/api/v1/conversations/{id}/messages"),
        json!({"text": "On its way!"}),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    let reply_id = r["message_id"].as_u64().unwrap();
    assert!(reply_id > first);
    let (_, conv) = get(&c, &d, &li, &format!("/api/v1/conversations/{id}")).await;
    assert_eq!(
        (conv["status"].as_str(), conv["assignee"].as_u64()),
        (Some("in_progress"), Some(me_id(&c, &d, &li).await))
    );
    let (_, msgs) = get(&c, &d, &li, &format!("/api/v1/conversations/{id}/messages")).await;
    let senders: Vec<_> = msgs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sender"].as_str().unwrap())
        .collect();
    assert_eq!(senders, ["visitor", "agent"]);
    let (_, after) = get(
        &c,
        &d,
        &li,
        &format!("/api/v1/conversations/{id}/messages?after={first}"),
    )
    .await;
    assert_eq!(after["messages"].as_array().unwrap().len(), 1);

    // Transfer to wang.
    let (status, conv) = post(
        &c,
        &d,
        &li,
        &format!("/api/v1/conversations/{id}/assign"),
        json!({"agent_id": wang_id}),
    )
    .await;
    assert_eq!(
        (status, conv["assignee"].as_u64()),
        (StatusCode::OK, Some(wang_id))
    );
    let (status, err) = post(
        &c,
        &d,
        &li,
        &format!("/api/v1/conversations/{id}/assign"),
        json!({"agent_id": 999}),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_agent"))
    );

    // Resolve; resolving again and replying are refused with 409 and a reason.
    let (status, conv) = post(
        &c,
        &d,
        &wang,
        &format!("/api/v1/conversations/{id}/resolve"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, conv["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
    let (status, err) = post(
        &c,
        &d,
        &wang,
        &format!("/api/v1/conversations/{id}/resolve"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("already resolved"),
        "{err}"
    );
    let (status, err) = post(
        &c,
        &d,
        &wang,
        &format!("/api/v1/conversations/{id}/messages"),
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(err["message"].as_str().unwrap().contains("reopen"), "{err}");

    // The customer writes again: the same conversation reopens as waiting.
    visitor_says(&d, "shopper", "s2", "Actually, one more thing").await;
    let (_, conv) = get(&c, &d, &li, &format!("/api/v1/conversations/{id}")).await;
    assert_eq!(conv["status"], "waiting");
    let (status, _) = post(
        &c,
        &d,
        &li,
        &format!("/api/v1/conversations/{id}/reopen"),
        json!({}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "only resolved conversations reopen"
    );
    post(
        &c,
        &d,
        &li,
        &format!("/api/v1/conversations/{id}/resolve"),
        json!({}),
    )
    .await;
    let (status, conv) = post(
        &c,
        &d,
        &li,
        &format!("/api/v1/conversations/{id}/reopen"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, conv["status"].as_str()),
        (StatusCode::OK, Some("in_progress"))
    );

    // Filters and search.
    let (_, open) = get(&c, &d, &li, "/api/v1/conversations?status=open").await;
    assert_eq!(open["conversations"].as_array().unwrap().len(), 1);
    let (_, resolved) = get(&c, &d, &li, "/api/v1/conversations?status=resolved").await;
    assert_eq!(resolved["conversations"].as_array().unwrap().len(), 0);
    let (_, found) = get(&c, &d, &li, "/api/v1/search?q=10423").await;
    assert_eq!(found["messages"][0]["id"].as_u64(), Some(first));

    // The feed saw every status change, in order, and resumes after any point.
    let mut seqs = Vec::new();
    while let Some(v) = try_next_json(&mut feed, 1).await {
        seqs.push(v["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let mut resumed = connect(&d.ws(&format!("/ws/agent?token={li}&after={first}"))).await;
    let mut again = Vec::new();
    while let Some(v) = try_next_json(&mut resumed, 1).await {
        again.push(v["seq"].as_u64().unwrap());
    }
    assert_eq!(
        again, seqs,
        "resume after the first message replays exactly what followed it"
    );
}

async fn me_id(c: &Client, d: &TestDaemon, token: &str) -> u64 {
    get(c, d, token, "/api/v1/me").await.1["id"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn bad_input_gets_json_errors_with_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", false);
    let d = TestDaemon::start(dir.path(), "[limits]\nmax_text_chars = 10\n");
    let c = Client::new();
    let t = login(&d, "li", "password-li").await;
    let cases: Vec<(StatusCode, Value, &str)> = vec![
        get(&c, &d, &t, "/api/v1/conversations?status=bogus")
            .await
            .into3("bad_status"),
        get(&c, &d, &t, "/api/v1/conversations/abc")
            .await
            .into3("bad_path"),
        get(&c, &d, &t, "/api/v1/conversations/12345")
            .await
            .into3("not_found"),
        get(&c, &d, &t, "/api/v1/conversations?limit=x")
            .await
            .into3("bad_query"),
        post(
            &c,
            &d,
            &t,
            "/api/v1/conversations/12345/messages",
            json!({"text": "hi"}),
        )
        .await
        .into3("not_found"),
        post(
            &c,
            &d,
            &t,
            "/api/v1/conversations/1/messages",
            json!({"txt": "hi"}),
        )
        .await
        .into3("bad_json"),
        post(
            &c,
            &d,
            &t,
            "/api/v1/conversations/1/messages",
            json!({"text": " "}),
        )
        .await
        .into3("empty_text"),
        post(
            &c,
            &d,
            &t,
            "/api/v1/conversations/1/messages",
            json!({"text": "12345678901"}),
        )
        .await
        .into3("text_too_long"),
        // A note's text is checked as a message's, with the same codes.
        post(
            &c,
            &d,
            &t,
            "/api/v1/conversations/1/notes",
            json!({"text": " "}),
        )
        .await
        .into3("empty_text"),
        post(
            &c,
            &d,
            &t,
            "/api/v1/conversations/1/notes",
            json!({"text": "12345678901"}),
        )
        .await
        .into3("text_too_long"),
        get(&c, &d, &t, "/api/v1/nope").await.into3("not_found"),
    ];
    for (status, body, code) in cases {
        assert!(status.is_client_error(), "{status} {body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

trait Into3 {
    fn into3(self, code: &str) -> (StatusCode, Value, &str);
}

impl Into3 for (StatusCode, Value) {
    fn into3(self, code: &str) -> (StatusCode, Value, &str) {
        (self.0, self.1, code)
    }
}

#[tokio::test]
async fn resolved_conversation_closes_after_the_timeout_and_the_next_message_opens_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", false);
    let d = TestDaemon::start(
        dir.path(),
        "[conversations]\nresolved_idle_after_secs = 1\n",
    );
    let c = Client::new();
    let t = login(&d, "li", "password-li").await;
    visitor_says(&d, "returning", "r1", "first visit").await;
    let (_, list) = get(&c, &d, &t, "/api/v1/conversations").await;
    let first = list["conversations"][0]["id"].as_u64().unwrap();
    let (status, _) = post(
        &c,
        &d,
        &t,
        &format!("/api/v1/conversations/{first}/resolve"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, conv) = get(&c, &d, &t, &format!("/api/v1/conversations/{first}")).await;
        if conv["status"] == "idle" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {conv}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, err) = post(
        &c,
        &d,
        &t,
        &format!("/api/v1/conversations/{first}/reopen"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    visitor_says(&d, "returning", "r2", "second visit").await;
    let (_, list) = get(&c, &d, &t, "/api/v1/conversations?status=waiting").await;
    let second = list["conversations"][0]["id"].as_u64().unwrap();
    assert_ne!(first, second, "a closed conversation stays closed");
    assert_eq!(
        list["conversations"][0]["contact_id"],
        get(&c, &d, &t, &format!("/api/v1/conversations/{first}"))
            .await
            .1["contact_id"]
    );
}

#[tokio::test]
async fn a_feed_that_falls_behind_is_closed_with_a_resume_point_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", false);
    let d = TestDaemon::start(
        dir.path(),
        "[limits]\nsubscriber_queue = 16\nmessages_per_second = 100000\nburst = 100000\nmax_text_chars = 16000\nmax_frame_bytes = 65536\n",
    );
    let t = login(&d, "li", "password-li").await;
    // An agent feed that does not read while ~24 MB flows past it.
    let mut slow = connect(&d.ws(&format!("/ws/agent?token={t}"))).await;
    let big = "z".repeat(16_000);
    let mut acked = Vec::new();
    for v in 0..4 {
        let url = d.ws(&format!("/ws/visitor?visitor_id=flood{v}"));
        let mut ws = connect(&url).await;
        next_json(&mut ws, 5).await;
        for i in 0..375 {
            // A visitor can be dropped for lagging too; like a real client it reconnects and
            // resends what was not acked (the same client_id, stored once).
            let id = loop {
                let ack = send_for_ack(&mut ws, &format!("f{i}"), &big).await;
                match ack {
                    Some(id) => break id,
                    None => {
                        ws = connect(&url).await;
                        next_json(&mut ws, 5).await;
                    }
                }
            };
            acked.push(id);
        }
    }
    // Now read: whatever was queued, then a close 1013 naming where to resume.
    let mut seen = Vec::new();
    let reason = loop {
        match tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures_util::StreamExt::next(&mut slow),
        )
        .await
        {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(txt)))) => {
                let v: Value = serde_json::from_str(txt.as_str()).unwrap();
                seen.push(v["seq"].as_u64().unwrap());
            }
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f))))) => {
                assert_eq!(u16::from(f.code), 1013);
                break f.reason.to_string();
            }
            // The feed pings to learn whether the console is still there.
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_)))) => {}
            other => panic!("expected frames then a close, got {other:?}"),
        }
    };
    let after: u64 = reason.rsplit("after=").next().unwrap().parse().unwrap();
    assert_eq!(Some(&after), seen.last(), "{reason}");
    let mut resumed = connect(&d.ws(&format!("/ws/agent?token={t}&after={after}"))).await;
    while let Some(v) = try_next_json(&mut resumed, 2).await {
        if v["type"] == "message" {
            seen.push(v["seq"].as_u64().unwrap());
        }
    }
    let messages: std::collections::BTreeSet<u64> =
        seen.iter().copied().filter(|s| acked.contains(s)).collect();
    assert_eq!(
        messages.len(),
        acked.len(),
        "every message reached the agent, across the drop"
    );
}

/// Ids are stored as SQLite integers (i64): one above i64::MAX is refused at the edge with
/// `bad_id`, never wrapped to a negative number (once, `after=2^64-1` read as -1 returned the
/// whole thread).
#[tokio::test]
async fn ids_beyond_the_stored_range_are_refused_not_wrapped() {
    const U64_MAX: &str = "18446744073709551615";
    const I64_MAX_PLUS_1: &str = "9223372036854775808";
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), "");
    let li = login(&d, "li", "password-li").await;
    let c = Client::new();
    visitor_says(&d, "v-range", "c1", "first").await;
    let (_, list) = get(&c, &d, &li, "/api/v1/conversations").await;
    let conversation = list["conversations"][0]["id"].as_u64().unwrap();

    for after in [U64_MAX, I64_MAX_PLUS_1] {
        let (status, body) = get(
            &c,
            &d,
            &li,
            &format!("/api/v1/conversations/{conversation}/messages?after={after}"),
        )
        .await;
        assert_eq!(
            (status, &body["code"]),
            (StatusCode::BAD_REQUEST, &json!("bad_id")),
            "{body}"
        );
        let (status, body) = get(&c, &d, &li, &format!("/api/v1/conversations/{after}")).await;
        assert_eq!(
            (status, &body["code"]),
            (StatusCode::BAD_REQUEST, &json!("bad_id")),
            "{body}"
        );
        for socket in [
            format!("/ws/visitor?visitor_id=v-range&after={after}"),
            format!("/ws/agent?token={li}&after={after}"),
        ] {
            match tokio_tungstenite::connect_async(d.ws(&socket)).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    assert_eq!(r.status(), 400, "{socket}");
                    let body: Value = serde_json::from_slice(r.body().as_deref().unwrap()).unwrap();
                    assert_eq!(body["code"], "bad_id", "{socket}: {body}");
                }
                other => panic!("{socket}: expected 400, got {:?}", other.map(|_| ())),
            }
        }
    }
    // The largest id there can be is a valid resume point (nothing after it).
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=v-range&after=9223372036854775807")).await;
    assert_eq!(next_json(&mut ws, 5).await["type"], "welcome");
    // A read frame naming an impossible message: an error frame, and the socket stays usable.
    send_json(
        &mut ws,
        json!({"type": "read", "message_id": 18446744073709551615u64}),
    )
    .await;
    let refused = next_json(&mut ws, 5).await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("bad_id")),
        "{refused}"
    );
    send_json(
        &mut ws,
        json!({"type": "message", "client_id": "c2", "text": "still here"}),
    )
    .await;
    assert_eq!(next_of_type(&mut ws, "ack", 5).await.0["type"], "ack");
}
