//! Webhooks against a real HTTP receiver on 127.0.0.1: replies and conversation events POSTed,
//! signed (HMAC-SHA256 over timestamp and body), with a stable idempotency key; retried with
//! backoff after failures; dead after the last attempt, and the delivery state in the API.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::*;
use hmac::{Hmac, Mac};
use reqwest::Client;
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "shop-webhook-secret-0123";

/// What the receiver saw: (headers, body) per request, and how many more to fail (None: all).
#[derive(Default)]
struct Receiver {
    requests: Vec<(HeaderMap, String)>,
    fail_next: usize,
    fail_all: bool,
}

async fn start_receiver(state: Arc<Mutex<Receiver>>) -> u16 {
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Arc<Mutex<Receiver>>>,
                 headers: HeaderMap,
                 body: String| async move {
                    let mut s = s.lock().unwrap();
                    s.requests.push((headers, body));
                    if s.fail_all {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    if s.fail_next > 0 {
                        s.fail_next -= 1;
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn config(port: u16, extra: &str) -> String {
    format!(
        "[[webhooks]]\nchannel = \"app\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{SECRET}\"\ntimeout_secs = 5\n\n\
         [outbox]\nfirst_retry_secs = 1\nmax_retry_secs = 2\n{extra}"
    )
}

/// Checks a request's signature the way a receiver would; returns the body as JSON.
fn verified(headers: &HeaderMap, body: &str) -> Value {
    let ts = headers["x-kefu-timestamp"].to_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - ts.parse::<i64>().unwrap()).abs() < 300,
        "a fresh timestamp"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        headers["x-kefu-signature"].to_str().unwrap(),
        format!("v1={expected}")
    );
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        headers["idempotency-key"].to_str().unwrap(),
        format!("kefu-{}", v["id"]),
        "the idempotency key names the delivery"
    );
    v
}

async fn post_inbox(d: &TestDaemon, key: &str, client_id: &str, text: &str) {
    let r = Client::new()
        .post(d.http("/api/v1/inbox/app/messages"))
        .header("x-api-key", key)
        .json(&json!({"contact_id": "user-9", "client_id": client_id, "text": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

async fn get(d: &TestDaemon, token: &str, path: &str) -> Value {
    Client::new()
        .get(d.http(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_delivery(d: &TestDaemon, token: &str, id: u64, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(d, token, &format!("/api/v1/messages/{id}/delivery")).await;
        if v["state"] == state {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "delivery of {id} is {v}, not {state}:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn api_key(dir: &std::path::Path) -> String {
    let (ok, out) = kefud_cli(dir, &["apikey", "add", "app", "--name", "shop app"], "");
    assert!(ok, "{out}");
    out.lines().last().unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_and_events_are_signed_retried_and_delivered() {
    let receiver = Arc::new(Mutex::new(Receiver {
        fail_next: 2,
        ..Receiver::default()
    }));
    let port = start_receiver(Arc::clone(&receiver)).await;
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let key = api_key(dir.path());
    let d = TestDaemon::start(dir.path(), &config(port, ""));
    let token = login(&d, "li", "password-li").await;

    post_inbox(&d, &key, "m1", "我想改收货地址").await;
    let list = get(&d, &token, "/api/v1/conversations?status=all").await;
    let conversation = list["conversations"][0]["id"].as_u64().unwrap();
    let r = Client::new()
        .post(d.http(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(&token)
        .json(&json!({"text": "好的, 请发新地址"}))
        .send()
        .await
        .unwrap();
    let reply: u64 = r.json::<Value>().await.unwrap()["message_id"]
        .as_u64()
        .unwrap();
    let v = wait_delivery(&d, &token, reply, "delivered").await;
    assert_eq!(v["kind"], "message");
    let r = Client::new()
        .post(d.http(&format!("/api/v1/conversations/{conversation}/resolve")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // Three deliveries: opened, the reply, resolved; the first two attempts failed (500).
    let deadline = Instant::now() + Duration::from_secs(30);
    let bodies = loop {
        let seen: Vec<Value> = receiver
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(h, b)| verified(h, b))
            .collect();
        if seen.iter().any(|v| v["type"] == "conversation_resolved") {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "no resolved event: {seen:?}\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let kinds: Vec<&str> = bodies.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert!(
        kinds.len() >= 5,
        "two failed attempts, then each delivered: {kinds:?}"
    );
    let opened = bodies
        .iter()
        .find(|v| v["type"] == "conversation_opened")
        .unwrap();
    assert_eq!(
        (opened["channel"].as_str(), opened["contact_id"].as_str()),
        (Some("app"), Some("user-9"))
    );
    assert_eq!(opened["conversation_id"], conversation);
    let message = bodies.iter().find(|v| v["type"] == "message").unwrap();
    assert_eq!(
        (
            message["message_id"].as_u64(),
            message["sender"].as_str(),
            message["text"].as_str()
        ),
        (Some(reply), Some("agent"), Some("好的, 请发新地址"))
    );
    // Retries carry the same id (and so the same idempotency key).
    let first_id = &bodies[0]["id"];
    assert!(
        bodies.iter().filter(|v| v["id"] == *first_id).count() >= 2,
        "{bodies:?}"
    );
    let resolved = bodies
        .iter()
        .find(|v| v["type"] == "conversation_resolved")
        .unwrap();
    let resolved_id = resolved["id"].as_u64().unwrap();
    wait_delivery(&d, &token, resolved_id, "delivered").await;
    let opened_state = wait_delivery(&d, &token, opened["id"].as_u64().unwrap(), "delivered").await;
    assert!(
        opened_state["attempts"].as_u64().unwrap() >= 2,
        "{opened_state}"
    );

    // The thread shows the reply's delivery; the console's channel list shows the webhook.
    let thread = get(
        &d,
        &token,
        &format!("/api/v1/conversations/{conversation}/messages"),
    )
    .await;
    let shown = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == reply)
        .unwrap()
        .clone();
    assert_eq!(
        (shown["channel"].as_str(), shown["delivery"].as_str()),
        (Some("app"), Some("delivered"))
    );
    let channels = get(&d, &token, "/api/v1/channels").await;
    assert_eq!(channels["channels"][0]["name"], "webhook:app", "{channels}");
    assert_eq!(channels["channels"][0]["counters"]["failed"], 2);

    // Nothing is sent again after a restart.
    let before = receiver.lock().unwrap().requests.len();
    let (status, _) = d.terminate();
    assert!(status.success());
    let d = TestDaemon::start(dir.path(), &config(port, ""));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.lock().unwrap().requests.len(), before);
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_the_receiver_keeps_refusing_goes_to_the_dead_letters() {
    let receiver = Arc::new(Mutex::new(Receiver {
        fail_all: true,
        ..Receiver::default()
    }));
    let port = start_receiver(Arc::clone(&receiver)).await;
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let key = api_key(dir.path());
    let d = TestDaemon::start(dir.path(), &config(port, "max_attempts = 3\n"));
    let token = login(&d, "li", "password-li").await;
    post_inbox(&d, &key, "m1", "hello").await;
    let list = get(&d, &token, "/api/v1/conversations?status=all").await;
    let conversation = list["conversations"][0]["id"].as_u64().unwrap();
    let r = Client::new()
        .post(d.http(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(&token)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    let reply = r.json::<Value>().await.unwrap()["message_id"]
        .as_u64()
        .unwrap();
    let dead = wait_delivery(&d, &token, reply, "dead").await;
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert_eq!(dead["last_error"], "HTTP 503");
    let attempts = receiver
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(_, b)| serde_json::from_str::<Value>(b).unwrap()["id"] == reply)
        .count();
    assert_eq!(attempts, 3);
    // A dead delivery stays dead across a restart (no more attempts).
    let (status, _) = d.terminate();
    assert!(status.success());
    let d = TestDaemon::start(dir.path(), &config(port, "max_attempts = 3\n"));
    let token = login(&d, "li", "password-li").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        get(&d, &token, &format!("/api/v1/messages/{reply}/delivery")).await["state"],
        "dead"
    );
}

#[test]
fn a_bad_webhook_config_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key) in [
        (
            "[[webhooks]]\nchannel = \"app\"\nurl = \"ftp://x\"\nsecret = \"0123456789abcdef\"\n",
            "webhooks.url",
        ),
        (
            "[[webhooks]]\nchannel = \"app\"\nurl = \"http://x/\"\nsecret = \"short\"\n",
            "webhooks.secret",
        ),
        (
            "[[webhooks]]\nchannel = \"web\"\nurl = \"http://x/\"\nsecret = \"0123456789abcdef\"\n",
            "webhooks.channel",
        ),
    ] {
        let config = write_config(dir.path(), extra);
        let out = std::process::Command::new(kefud_bin())
            .arg("--config")
            .arg(&config)
            .arg("--check-config")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(key), "{key}: {text}");
    }
}
