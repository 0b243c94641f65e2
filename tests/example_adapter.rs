//! The example adapter (examples/adapter.rs) end to end, with kefud in this process: a TCP
//! chat client's message is acknowledged once durable and shows in the agents' inbox; an
//! agent's reply reaches the client; a reply to a user who is offline waits in the outbox
//! and arrives when they are back.

#[path = "../examples/adapter.rs"]
mod adapter;
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Lines = tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>;

async fn chat_client(port: u16, name: &str) -> (Lines, tokio::net::tcp::OwnedWriteHalf) {
    let (read, mut write) = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap()
        .into_split();
    write
        .write_all(format!("{name}\n").as_bytes())
        .await
        .unwrap();
    (BufReader::new(read).lines(), write)
}

async fn next_line(lines: &mut Lines) -> String {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a line within 20 s")
        .unwrap()
        .expect("the connection stays open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrators_adapter_carries_messages_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = kefud::config::Config::parse(&format!(
        "[server]\nlisten = \"127.0.0.1:{http_port}\"\n[storage]\ndata_dir = {:?}\n[outbox]\nfirst_retry_secs = 1\nmax_retry_secs = 1\n",
        dir.path().join("data").display().to_string()
    ))
    .unwrap();
    let log = kefud::telemetry::init("warn");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let chat_port = listener.local_addr().unwrap().port();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(kefud::app::run_with_adapters(
        cfg,
        kefud::reload::Reloader { path: None, log },
        shutdown.clone(),
        vec![Arc::new(adapter::TcpChat::new(listener))],
    ));
    let http = |path: &str| format!("http://127.0.0.1:{http_port}{path}");
    let c = Client::new();
    for _ in 0..200 {
        if c.get(http("/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token: String = c
        .post(http("/api/v1/login"))
        .json(&json!({"username": "li", "password": "password-li"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let (mut lines, mut write) = chat_client(chat_port, "alice").await;
    write
        .write_all("is the blue one in stock?\n".as_bytes())
        .await
        .unwrap();
    let ok = next_line(&mut lines).await;
    assert!(ok.starts_with("ok "), "{ok}");
    let list: Value = c
        .get(http("/api/v1/conversations?status=all"))
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
        (Some(adapter::CHANNEL), Some("alice"))
    );
    let id = conv["id"].as_u64().unwrap();
    let send = |text: &'static str| {
        let (c, url, token) = (
            c.clone(),
            http(&format!("/api/v1/conversations/{id}/messages")),
            token.clone(),
        );
        async move {
            let r = c
                .post(url)
                .bearer_auth(token)
                .json(&json!({"text": text}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["message_id"]
                .as_u64()
                .unwrap()
        }
    };
    let first = send("yes, two left").await;
    assert_eq!(
        next_line(&mut lines).await,
        format!("reply {first} yes, two left")
    );

    // Alice leaves; the reply waits in the outbox and arrives when she is back.
    drop((lines, write));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later = send("we kept one for you").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut lines, _write) = chat_client(chat_port, "alice").await;
    assert_eq!(
        next_line(&mut lines).await,
        format!("reply {later} we kept one for you")
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), daemon)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
