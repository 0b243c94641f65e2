//! The API behind the console and the widget, on the real binary: first-run setup, settings,
//! widget info and presence, private notes, typing, contacts, canned replies, agent accounts,
//! image uploads, WebSocket Origin checks, and the embedded pages' headers.

mod common;

use common::*;
use futures_util::SinkExt;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

async fn call(
    c: &Client,
    d: &TestDaemon,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c.request(method, d.http(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_setup_creates_the_one_admin_and_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    let c = Client::new();
    let (s, v) = call(&c, &d, None, Method::GET, "/api/v1/setup", None).await;
    assert_eq!((s, &v), (StatusCode::OK, &json!({"needed": true})));
    let (s, v) = call(
        &c,
        &d,
        None,
        Method::POST,
        "/api/v1/setup",
        Some(json!({"shop_name": "小王咖啡", "username": "owner", "password": "short"})),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("weak_password"))
    );
    let (s, v) = call(&c, &d, None, Method::POST, "/api/v1/setup",
        Some(json!({"shop_name": "小王咖啡", "username": "owner", "display_name": "Wang", "password": "a-long-password"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["agent"]["is_admin"], true);
    // Nobody can run setup again, not even with other names.
    let (s, v) = call(
        &c,
        &d,
        None,
        Method::POST,
        "/api/v1/setup",
        Some(json!({"shop_name": "x", "username": "intruder", "password": "another-long-one"})),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("setup_done"))
    );
    let (_, v) = call(&c, &d, None, Method::GET, "/api/v1/setup", None).await;
    assert_eq!(v, json!({"needed": false}));
    let (_, v) = call(&c, &d, Some(&token), Method::GET, "/api/v1/settings", None).await;
    assert_eq!(v["shop_name"], "小王咖啡");
    let (_, v) = call(&c, &d, None, Method::GET, "/api/v1/widget/info", None).await;
    assert_eq!(
        v,
        json!({"shop_name": "小王咖啡", "agents_online": 0, "open": true, "away_message": null,
               "prechat": {"mode": "during", "required": false}}),
        "business hours are off by default: open; the widget's form offered after the first message"
    );
    let _feed = connect(&d.ws(&format!("/ws/agent?token={token}"))).await;
    let mut online = 0;
    for _ in 0..50 {
        let (_, v) = call(&c, &d, None, Method::GET, "/api/v1/widget/info", None).await;
        online = v["agents_online"].as_u64().unwrap();
        if online == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(online, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_stay_private_and_typing_travels_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), "[routing]\nauto_assign = false\n");
    let c = Client::new();
    let token = login(&d, "li", "password-li").await;
    let mut feed = connect(&d.ws(&format!("/ws/agent?token={token}"))).await;
    let mut visitor = connect(&d.ws("/ws/visitor?visitor_id=tea")).await;
    next_of_type(&mut visitor, "welcome", 5).await;
    let first = send_for_ack(&mut visitor, "t1", "有乌龙茶吗")
        .await
        .unwrap();
    let (m, _) = next_of_type(&mut feed, "message", 5).await;
    let conversation = m["message"]["conversation_id"].as_u64().unwrap();
    let contact = m["message"]["contact_id"].as_u64().unwrap();

    // The customer types: agents learn which conversation.
    send_json(&mut visitor, json!({"type": "typing"})).await;
    let (t, _) = next_of_type(&mut feed, "typing", 5).await;
    assert_eq!(
        t,
        json!({"type": "typing", "conversation_id": conversation, "contact_id": contact})
    );
    // An agent types: the customer sees it.
    let (s, _) = call(
        &c,
        &d,
        Some(&token),
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/typing"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (t, _) = next_of_type(&mut visitor, "typing", 5).await;
    assert_eq!(t, json!({"type": "typing", "sender": "agent"}));

    // A note: agents see it live and in the thread; the customer never does.
    let (s, v) = call(
        &c,
        &d,
        Some(&token),
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/notes"),
        Some(json!({"text": "熟客，给九折"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (n, _) = next_of_type(&mut feed, "message", 5).await;
    assert_eq!(n["message"]["sender"], "note");
    let (s, _) = call(
        &c,
        &d,
        Some(&token),
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/messages"),
        Some(json!({"text": "有的"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (reply, skipped) = next_of_type(&mut visitor, "message", 5).await;
    let reply = if reply["sender"] == "visitor" {
        next_of_type(&mut visitor, "message", 5).await.0
    } else {
        reply
    };
    assert_eq!(reply["text"], "有的");
    assert!(skipped.iter().all(|f| f["sender"] != "note"), "{skipped:?}");
    let mut history = connect(&d.ws("/ws/visitor?visitor_id=tea&after=0")).await;
    let mut texts = Vec::new();
    while let Some(f) = try_next_json(&mut history, 1).await {
        if f["type"] == "message" {
            texts.push(f["text"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        texts,
        ["有乌龙茶吗", "有的"],
        "the replayed history has no note"
    );
    let (_, thread) = call(
        &c,
        &d,
        Some(&token),
        Method::GET,
        &format!("/api/v1/conversations/{conversation}/messages"),
        None,
    )
    .await;
    let senders: Vec<&str> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sender"].as_str().unwrap())
        .collect();
    assert_eq!(senders, ["visitor", "note", "agent"]);
    assert!(first > 0);

    // The contact panel.
    let (s, v) = call(
        &c,
        &d,
        Some(&token),
        Method::GET,
        &format!("/api/v1/contacts/{contact}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["identities"],
        json!([{"channel": "web", "external_id": "tea"}])
    );
    assert_eq!(v["conversations"][0]["id"], conversation);
    let (s, _) = call(
        &c,
        &d,
        Some(&token),
        Method::GET,
        "/api/v1/contacts/999",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canned_replies_and_agent_accounts_are_admin_managed() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    add_agent(dir.path(), "wang", "password-wang", false);
    let d = TestDaemon::start(dir.path(), "");
    let c = Client::new();
    let admin = login(&d, "li", "password-li").await;
    let wang = login(&d, "wang", "password-wang").await;
    let (s, v) = call(
        &c,
        &d,
        Some(&admin),
        Method::POST,
        "/api/v1/canned",
        Some(json!({"shortcut": "/hours", "text": "每天9点到21点"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().unwrap();
    assert_eq!(v["shortcut"], "hours");
    let (s, v) = call(
        &c,
        &d,
        Some(&admin),
        Method::POST,
        "/api/v1/canned",
        Some(json!({"shortcut": "HOURS", "text": "dup"})),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    // Its text is checked as a message's, with the same codes.
    let (s, v) = call(
        &c,
        &d,
        Some(&admin),
        Method::POST,
        "/api/v1/canned",
        Some(json!({"shortcut": "blank", "text": " "})),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("empty_text"))
    );
    let (s, _) = call(
        &c,
        &d,
        Some(&wang),
        Method::POST,
        "/api/v1/canned",
        Some(json!({"shortcut": "x", "text": "y"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &c,
        &d,
        Some(&admin),
        Method::PUT,
        &format!("/api/v1/canned/{id}"),
        Some(json!({"shortcut": "hours", "text": "9-21"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(&c, &d, Some(&wang), Method::GET, "/api/v1/canned", None).await;
    assert_eq!(
        v["canned"],
        json!([{"id": id, "shortcut": "hours", "text": "9-21"}])
    );
    let (s, _) = call(
        &c,
        &d,
        Some(&admin),
        Method::DELETE,
        &format!("/api/v1/canned/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (s, v) = call(&c, &d, Some(&admin), Method::POST, "/api/v1/agents",
        Some(json!({"username": "zhao", "display_name": "Zhao", "password": "password-zhao", "is_admin": false}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let zhao_id = v["id"].as_u64().unwrap();
    let (s, _) = call(
        &c,
        &d,
        Some(&wang),
        Method::POST,
        "/api/v1/agents",
        Some(json!({"username": "x", "password": "password-xxx"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = call(
        &c,
        &d,
        Some(&admin),
        Method::POST,
        "/api/v1/agents",
        Some(json!({"username": "zhao", "password": "password-zhao"})),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    let zhao = login(&d, "zhao", "password-zhao").await;
    let (s, _) = call(
        &c,
        &d,
        Some(&admin),
        Method::POST,
        &format!("/api/v1/agents/{zhao_id}/password"),
        Some(json!({"password": "new-password-zhao"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The reset revoked zhao's session; the new password works.
    let (s, _) = call(&c, &d, Some(&zhao), Method::GET, "/api/v1/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    login(&d, "zhao", "new-password-zhao").await;
    // Disabling signs them out.
    let (s, _) = call(
        &c,
        &d,
        Some(&admin),
        Method::PATCH,
        &format!("/api/v1/agents/{zhao_id}"),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let r = c
        .post(d.http("/api/v1/login"))
        .json(&json!({"username": "zhao", "password": "new-password-zhao"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_send_images_checked_by_content() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), "");
    let c = Client::new();
    let token = login(&d, "li", "password-li").await;
    let up = |visitor: &str, body: Vec<u8>| {
        c.post(d.http(&format!("/api/v1/visitor/uploads?visitor_id={visitor}")))
            .header("content-type", "image/png")
            .body(body)
            .send()
    };
    let r = up("pic", PNG.to_vec()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let upload = r.json::<Value>().await.unwrap()["upload"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(upload.ends_with(".png") && upload.len() == 68, "{upload}");
    // Declared as an image but is not one; and one too big.
    let r = up("pic", b"<svg onload=alert(1)></svg>".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut big = PNG.to_vec();
    big.resize(5 * 1024 * 1024 + 10, 0);
    let r = up("pic", big).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=pic")).await;
    next_of_type(&mut ws, "welcome", 5).await;
    send_json(
        &mut ws,
        json!({"type": "message", "client_id": "p1", "text": "", "attachment": upload}),
    )
    .await;
    // The ack and the echo of the message race; take both in either order.
    let (ack, skipped) = next_of_type(&mut ws, "ack", 5).await;
    let id = ack["message_id"].as_u64().unwrap();
    let echo = match skipped.into_iter().find(|f| f["type"] == "message") {
        Some(echo) => echo,
        None => next_of_type(&mut ws, "message", 5).await.0,
    };
    assert_eq!(echo["attachment"], upload.as_str());
    // Another visitor cannot send someone else's upload.
    let mut other = connect(&d.ws("/ws/visitor?visitor_id=other")).await;
    next_of_type(&mut other, "welcome", 5).await;
    send_json(
        &mut other,
        json!({"type": "message", "client_id": "o1", "text": "", "attachment": upload}),
    )
    .await;
    let (err, _) = next_of_type(&mut other, "error", 5).await;
    assert_eq!(err["code"], "bad_attachment");

    // Agents fetch it with their token; the visitor with their id; nobody else.
    let r = c
        .get(d.http(&format!("/api/v1/uploads/{upload}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);
    let r = c
        .get(d.http(&format!("/api/v1/uploads/{upload}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(d.http(&format!("/api/v1/visitor/uploads/{upload}?visitor_id=pic")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(d.http(&format!(
            "/api/v1/visitor/uploads/{upload}?visitor_id=other"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (_, thread) = call(
        &c,
        &d,
        Some(&token),
        Method::GET,
        "/api/v1/search?q=zzzz",
        None,
    )
    .await;
    assert!(thread["messages"].as_array().unwrap().is_empty());
    let list = call(
        &c,
        &d,
        Some(&token),
        Method::GET,
        "/api/v1/conversations?status=all",
        None,
    )
    .await
    .1;
    let conv = list["conversations"][0]["id"].as_u64().unwrap();
    let (_, thread) = call(
        &c,
        &d,
        Some(&token),
        Method::GET,
        &format!("/api/v1/conversations/{conv}/messages"),
        None,
    )
    .await;
    assert_eq!(thread["messages"][0]["id"], id);
    assert_eq!(thread["messages"][0]["attachment"], upload.as_str());
}

/// Opens a WebSocket with an `Origin` header; returns the HTTP status of a refusal, or 101.
async fn ws_with_origin(url: &str, origin: &str) -> u16 {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, resp)) => {
            let _ = ws.send(Message::Close(None)).await;
            resp.status().as_u16()
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_check_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\nwidget_origins = [\"http://shop.example\"]\n",
    );
    let token = login(&d, "li", "password-li").await;
    let own = format!("http://{}", d.addr);
    assert_eq!(
        ws_with_origin(&d.ws(&format!("/ws/agent?token={token}")), &own).await,
        101
    );
    assert_eq!(
        ws_with_origin(
            &d.ws(&format!("/ws/agent?token={token}")),
            "http://evil.example"
        )
        .await,
        403
    );
    assert_eq!(
        ws_with_origin(
            &d.ws(&format!("/ws/agent?token={token}")),
            "http://shop.example"
        )
        .await,
        403
    );
    assert_eq!(
        ws_with_origin(&d.ws("/ws/visitor?visitor_id=a"), "http://shop.example").await,
        101
    );
    assert_eq!(
        ws_with_origin(&d.ws("/ws/visitor?visitor_id=a"), &own).await,
        101
    );
    assert_eq!(
        ws_with_origin(&d.ws("/ws/visitor?visitor_id=a"), "http://evil.example").await,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_embedded_with_a_content_security_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    let c = Client::builder().build().unwrap();
    let r = c
        .get(d.http("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let r = c.get(d.http("/chat")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors *"));
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<html") || body.contains("<!doctype") || body.contains("<!DOCTYPE"),
        "{body}"
    );
    // A page is served only at its route, with its policy; never as a plain file.
    let r = c
        .get(d.http("/web/console/index.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.get(d.http("/web/../Cargo.toml")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.get(d.http("/web/nothing-here.js")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
