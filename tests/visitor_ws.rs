//! The visitor WebSocket contract, against the real binary.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

fn msg(client_id: &str, text: &str) -> Value {
    json!({"type": "message", "client_id": client_id, "text": text})
}

/// Sends a message and returns (ack, echoed message frame), in whichever order they arrive.
async fn send_and_ack(ws: &mut Ws, client_id: &str, text: &str) -> (Value, Value) {
    send_json(ws, msg(client_id, text)).await;
    let (mut ack, mut echo) = (None, None);
    while ack.is_none() || echo.is_none() {
        let v = next_json(ws, 10).await;
        match v["type"].as_str() {
            Some("ack") => ack = Some(v),
            Some("message") if v["client_id"] == client_id => echo = Some(v),
            _ => panic!("unexpected frame {v}"),
        }
    }
    (ack.unwrap(), echo.unwrap())
}

#[tokio::test]
async fn ack_echo_dedupe_and_second_tab() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    let mut ws = connect(&d.ws("/ws/visitor")).await;
    let welcome = next_json(&mut ws, 5).await;
    assert_eq!(welcome["type"], "welcome");
    let visitor = welcome["visitor_id"].as_str().unwrap().to_string();
    assert!(!visitor.is_empty());

    let (ack, echo) = send_and_ack(&mut ws, "c1", "你好, is the shop open?").await;
    assert_eq!(ack["client_id"], "c1");
    let id = ack["message_id"].as_u64().unwrap();
    assert_eq!(echo["message_id"], id);
    assert_eq!(echo["sender"], "visitor");
    assert_eq!(echo["text"], "你好, is the shop open?");

    // A second tab of the same visitor sees new messages.
    let mut tab2 = connect(&d.ws(&format!("/ws/visitor?visitor_id={visitor}"))).await;
    assert_eq!(
        next_json(&mut tab2, 5).await["visitor_id"],
        visitor.as_str()
    );

    // The same client_id again: same message id, stored once (no new message frame).
    send_json(&mut ws, msg("c1", "你好, is the shop open?")).await;
    let again = next_json(&mut ws, 5).await;
    assert_eq!(
        (again["type"].as_str(), again["message_id"].as_u64()),
        (Some("ack"), Some(id))
    );
    let (ack2, _) = send_and_ack(&mut ws, "c2", "second").await;
    let id2 = ack2["message_id"].as_u64().unwrap();
    assert!(id2 > id, "message ids only grow");
    let seen = next_json(&mut tab2, 5).await;
    assert_eq!(
        (seen["message_id"].as_u64(), seen["text"].as_str()),
        (Some(id2), Some("second"))
    );
}

#[tokio::test]
async fn resume_after_sends_everything_after_n_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    add_agent(dir.path(), "li", "password1", false);
    let token = login(&d, "li", "password1").await;
    let http = reqwest::Client::new();

    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=resumer")).await;
    next_json(&mut ws, 5).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (ack, _) = send_and_ack(&mut ws, &format!("m{i}"), &format!("visitor {i}")).await;
        ids.push(ack["message_id"].as_u64().unwrap());
    }
    drop(ws);
    let conv = http
        .get(d.http("/api/v1/conversations?status=waiting"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["conversations"][0]["id"]
        .as_u64()
        .unwrap();
    for i in 0..2 {
        let r = http
            .post(d.http(&format!("/api/v1/conversations/{conv}/messages")))
            .bearer_auth(&token)
            .json(&json!({"text": format!("agent {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id=resumer&after={}", ids[0]))).await;
    assert_eq!(next_json(&mut ws, 5).await["type"], "welcome");
    let mut got = Vec::new();
    for _ in 0..4 {
        let v = next_json(&mut ws, 5).await;
        got.push((
            v["sender"].as_str().unwrap().to_string(),
            v["text"].as_str().unwrap().to_string(),
            v["message_id"].as_u64().unwrap(),
        ));
    }
    let texts: Vec<_> = got.iter().map(|(s, t, _)| format!("{s}:{t}")).collect();
    assert_eq!(
        texts,
        [
            "visitor:visitor 1",
            "visitor:visitor 2",
            "agent:agent 0",
            "agent:agent 1"
        ]
    );
    assert!(got.windows(2).all(|w| w[0].2 < w[1].2), "in order: {got:?}");
    assert!(try_next_json(&mut ws, 1).await.is_none(), "nothing twice");

    // Then live ones.
    http.post(d.http(&format!("/api/v1/conversations/{conv}/messages")))
        .bearer_auth(&token)
        .json(&json!({"text": "live"}))
        .send()
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws, 5).await["text"], "live");
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        "[limits]\nmax_frame_bytes = 1024\nmax_text_chars = 100\n",
    );
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=bad")).await;
    next_json(&mut ws, 5).await;

    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("{not json".into()), "bad_json"),
        (
            Message::Text(r#"{"type":"subscribe"}"#.into()),
            "unknown_type",
        ),
        (
            Message::Text(msg("", "x").to_string().into()),
            "bad_client_id",
        ),
        (
            Message::Text(msg(&"a".repeat(65), "x").to_string().into()),
            "bad_client_id",
        ),
        (
            Message::Text(msg("ok", "").to_string().into()),
            "empty_text",
        ),
        (
            Message::Text(msg("ok", &"x".repeat(101)).to_string().into()),
            "text_too_long",
        ),
        (
            Message::Text(msg("ok", &"x".repeat(2000)).to_string().into()),
            "frame_too_large",
        ),
        (
            Message::Binary(vec![0xff, 0xfe, b'{'].into()),
            "invalid_utf8",
        ),
    ];
    for (frame, code) in cases {
        ws.send(frame).await.unwrap();
        let v = next_json(&mut ws, 5).await;
        assert_eq!(
            (v["type"].as_str(), v["code"].as_str()),
            (Some("error"), Some(code)),
            "{v}"
        );
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    // A refused message names its client_id, so the client stops waiting for its ack.
    ws.send(Message::Text(
        json!({"type": "message", "client_id": "long-1", "text": "x".repeat(101)})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let v = next_json(&mut ws, 5).await;
    assert_eq!(
        (v["code"].as_str(), v["client_id"].as_str()),
        (Some("text_too_long"), Some("long-1")),
        "{v}"
    );
    // Still usable, and nothing bad was stored.
    let (ack, _) = send_and_ack(&mut ws, "good", "still here").await;
    assert!(ack["message_id"].as_u64().is_some());
    let mut fresh = connect(&d.ws("/ws/visitor?visitor_id=bad&after=0")).await;
    next_json(&mut fresh, 5).await;
    assert_eq!(next_json(&mut fresh, 5).await["text"], "still here");
    assert!(try_next_json(&mut fresh, 1).await.is_none());

    // A 64-char client id is fine; binary frames holding JSON work too.
    ws.send(Message::Binary(
        msg(&"b".repeat(64), "binary")
            .to_string()
            .into_bytes()
            .into(),
    ))
    .await
    .unwrap();
    let (v, _) = next_of_type(&mut ws, "ack", 5).await;
    assert_eq!(v["client_id"], "b".repeat(64));

    // Past the hard cap the protocol's own answer: close 1009.
    ws.send(Message::Text("x".repeat(70 * 1024).into()))
        .await
        .unwrap();
    let closed = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(Some(f)))) => break f.code,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed, CloseCode::Size);
}

#[tokio::test]
async fn invalid_utf8_text_frame_closes_with_1007() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    // Handshake by hand, then a masked text frame whose payload is not UTF-8.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let req = format!(
        "GET /ws/visitor?visitor_id=raw HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        d.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let payload = [0xffu8, 0xfe, 0xfd];
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        // A close frame (0x88) carrying code 1007 (0x03 0xEF).
        if seen
            .windows(4)
            .any(|w| w[0] == 0x88 && w[2] == 0x03 && w[3] == 0xef)
        {
            return;
        }
    }
    panic!("no close 1007 in {:?}", String::from_utf8_lossy(&seen));
}

#[tokio::test]
async fn rate_limit_refuses_with_an_error_frame() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "[limits]\nmessages_per_second = 1\nburst = 3\n");
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=fast")).await;
    next_json(&mut ws, 5).await;
    for i in 0..6 {
        send_json(&mut ws, msg(&format!("r{i}"), "spam")).await;
    }
    let (mut acks, mut limited) = (0, 0);
    while acks + limited < 6 {
        let v = next_json(&mut ws, 5).await;
        match v["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => {
                assert_eq!(v["code"], "rate_limited");
                limited += 1;
            }
            _ => {}
        }
    }
    assert_eq!((acks, limited), (3, 3));
}

#[tokio::test]
async fn bad_visitor_id_is_refused_before_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    let url = d.ws(&format!("/ws/visitor?visitor_id={}", "x".repeat(65)));
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 400),
        other => panic!("expected HTTP 400, got {other}"),
    }
}

/// The client's next frame: a close frame's code (`None` for a close without one), or the
/// error or end it met instead.
async fn close_seen(ws: &mut Ws) -> Result<Option<CloseCode>, String> {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => return Ok(f.map(|f| f.code)),
            Ok(Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)))) => continue,
            other => return Err(format!("{other:?}")),
        }
    }
}

/// A client that closes gets the close handshake answered (its code echoed), on both
/// sockets; and the server's own close (shutdown: 1001) reaches the agents' feed too.
#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", false);
    let d = TestDaemon::start(dir.path(), "");
    let token = login(&d, "li", "password-li").await;
    for path in [
        "/ws/visitor?visitor_id=v-closer".to_string(),
        format!("/ws/agent?token={token}"),
    ] {
        let mut ws = connect(&d.ws(&path)).await;
        if path.starts_with("/ws/visitor") {
            next_json(&mut ws, 5).await;
        }
        ws.send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            },
        )))
        .await
        .unwrap();
        assert_eq!(
            close_seen(&mut ws).await,
            Ok(Some(CloseCode::Normal)),
            "{path}: the close handshake was not answered"
        );
        // Then the connection ends cleanly (no reset without a closing handshake).
        assert!(
            matches!(
                ws.next().await,
                None | Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))
            ),
            "{path}"
        );
    }
    let mut feed = connect(&d.ws(&format!("/ws/agent?token={token}"))).await;
    // The feed is live once its presence reached the scheduler; give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(close_seen(&mut feed).await, Ok(Some(CloseCode::Away)));
}
