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
    let d = TestDaemon::start(dir.path(), "");
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
