//! The HTTP API channel on the real binary: keys from the CLI and the API, 202 after durable,
//! idempotent on client_id, keys bound to their channel and revocable, bad input refused,
//! and the messages in the agents' inbox.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

async fn post_inbox(
    c: &Client,
    d: &TestDaemon,
    channel: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = c
        .post(d.http(&format!("/api/v1/inbox/{channel}/messages")))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_post_customer_messages_with_an_api_key() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let (ok, out) = kefud_cli(
        dir.path(),
        &["apikey", "add", "kiosk", "--name", "front door"],
        "",
    );
    assert!(ok, "{out}");
    let kiosk_key = out.lines().last().unwrap().trim().to_string();
    assert!(kiosk_key.starts_with("kefu_"), "{out}");

    let d = TestDaemon::start(dir.path(), "");
    let c = Client::new();
    let body = json!({"contact_id": "table-7", "client_id": "k-1", "text": "可以加一壶热水吗"});
    let (s, v) = post_inbox(&c, &d, "kiosk", &kiosk_key, body.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["message_id"].as_u64().unwrap();
    // A retry after a lost response: the same message, stored once.
    let (s, v) = post_inbox(&c, &d, "kiosk", &kiosk_key, body).await;
    assert_eq!(
        (s, v["message_id"].as_u64()),
        (StatusCode::ACCEPTED, Some(id))
    );
    // Bearer works too.
    let r = c
        .post(d.http("/api/v1/inbox/kiosk/messages"))
        .bearer_auth(&kiosk_key)
        .json(&json!({"contact_id": "table-7", "client_id": "k-2", "text": "谢谢"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let token = login(&d, "li", "password-li").await;
    let list: Value = c
        .get(d.http("/api/v1/conversations?status=all"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conv = &list["conversations"][0];
    assert_eq!(
        (conv["channel"].as_str(), conv["external_id"].as_str()),
        (Some("kiosk"), Some("table-7"))
    );
    assert_eq!(conv["message_count"], 2);

    // Refusals: no key, a wrong key, a key for another channel, bad bodies.
    let (s, _) = post_inbox(&c, &d, "kiosk", "kefu_0000", json!({})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = c
        .post(d.http("/api/v1/inbox/kiosk/messages"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (s, _) = post_inbox(
        &c,
        &d,
        "app",
        &kiosk_key,
        json!({"contact_id": "u", "client_id": "a", "text": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (body, code) in [
        (
            json!({"contact_id": "t", "client_id": "b", "text": "  "}),
            "empty_text",
        ),
        (
            json!({"contact_id": "", "client_id": "b", "text": "x"}),
            "bad_contact_id",
        ),
        (
            json!({"contact_id": "t", "client_id": "x".repeat(65), "text": "x"}),
            "bad_client_id",
        ),
        (json!({"contact_id": "t", "text": "x"}), "bad_json"),
    ] {
        let (s, v) = post_inbox(&c, &d, "kiosk", &kiosk_key, body).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{v}"
        );
    }

    // Keys from the API: created (shown once), listed without the secret, revoked.
    let r = c
        .post(d.http("/api/v1/apikeys"))
        .bearer_auth(&token)
        .json(&json!({"channel": "app", "name": "iOS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let app_key = created["key"].as_str().unwrap().to_string();
    let key_id = created["api_key"]["id"].as_i64().unwrap();
    let (s, _) = post_inbox(
        &c,
        &d,
        "app",
        &app_key,
        json!({"contact_id": "u1", "client_id": "a1", "text": "hello"}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let listed = c
        .get(d.http("/api/v1/apikeys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("\"iOS\"") && !listed.contains(&app_key),
        "{listed}"
    );
    let r = c
        .delete(d.http(&format!("/api/v1/apikeys/{key_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (s, _) = post_inbox(
        &c,
        &d,
        "app",
        &app_key,
        json!({"contact_id": "u1", "client_id": "a2", "text": "again"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = c
        .post(d.http("/api/v1/apikeys"))
        .bearer_auth(&token)
        .json(&json!({"channel": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Acknowledged means durable: kill -9 and the messages are there.
    d.kill9();
    let d = TestDaemon::start(dir.path(), "");
    let token = login(&d, "li", "password-li").await;
    let list: Value = c
        .get(d.http("/api/v1/conversations?status=all"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total: u64 = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 3);
}

/// Linking never folds an open question into a conversation that is resolved: the open one
/// stays, with both histories, still waiting for an agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_keeps_the_open_question_open() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let (ok, out) = kefud_cli(dir.path(), &["apikey", "add", "app"], "");
    assert!(ok, "{out}");
    let key = out.lines().last().unwrap().trim().to_string();
    let d = TestDaemon::start(dir.path(), "");
    let c = Client::new();
    let token = login(&d, "li", "password-li").await;
    let get = |path: &str| {
        let (c, url, token) = (c.clone(), d.http(path), token.clone());
        async move {
            c.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    // The widget contact's conversation is resolved ...
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=v-7")).await;
    next_json(&mut ws, 10).await;
    assert!(send_for_ack(&mut ws, "1", "old question, answered")
        .await
        .is_some());
    let list = get("/api/v1/conversations?status=all").await;
    let web_conv = list["conversations"][0]["id"].as_u64().unwrap();
    let web_contact = list["conversations"][0]["contact_id"].as_u64().unwrap();
    let r = c
        .post(d.http(&format!("/api/v1/conversations/{web_conv}/resolve")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // ... while the app contact asks something new.
    let (s, _) = post_inbox(
        &c,
        &d,
        "app",
        &key,
        json!({"contact_id": "u-7", "client_id": "a", "text": "new question"}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let list = get("/api/v1/conversations?status=open").await;
    let app_conv = list["conversations"][0]["id"].as_u64().unwrap();

    let r = c
        .post(d.http(&format!("/api/v1/contacts/{web_contact}/link")))
        .bearer_auth(&token)
        .json(&json!({"contact_id": list["conversations"][0]["contact_id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let linked: Value = r.json().await.unwrap();
    assert_eq!(
        linked["conversation_id"].as_u64(),
        Some(app_conv),
        "the open one stays"
    );
    let conv = get(&format!("/api/v1/conversations/{app_conv}")).await;
    assert_eq!(
        (conv["status"].as_str(), conv["contact_id"].as_u64()),
        (Some("waiting"), Some(web_contact)),
        "{conv}"
    );
    let texts: Vec<String> = get(&format!("/api/v1/conversations/{app_conv}/messages")).await
        ["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, ["old question, answered", "new question"]);
    let all = get("/api/v1/conversations?status=all").await;
    assert_eq!(
        all["conversations"].as_array().unwrap().len(),
        1,
        "the folded one is not listed: {all}"
    );
    // Linking again, or to itself, or to nobody, is refused.
    for (other, status) in [(web_contact, 400), (999, 404)] {
        let r = c
            .post(d.http(&format!("/api/v1/contacts/{web_contact}/link")))
            .bearer_auth(&token)
            .json(&json!({"contact_id": other}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
    }
}
