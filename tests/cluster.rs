//! Cluster mode with real processes on loopback: three kefud boxes, each with its own
//! mosquitto bridged to a central mosquitto (`topic kefu/# both 1`, as README "Several shops"
//! tells a shop to configure it), the central one without persistence.
//!
//! A customer on box A is answered by an agent on box B; a box cut off from the others keeps
//! working and catches up; the central broker killed with kill -9 in the middle of thousands
//! of operations loses none of them for good; a box killed with kill -9 while it writes loses
//! and doubles nothing; forged and replayed batches are dropped and counted. Every test ends
//! by comparing every box's projection of the conversations.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};

#[tokio::test]
async fn a_customer_on_box_a_is_answered_by_an_agent_on_box_b() {
    let tmp = tempfile::tempdir().unwrap();
    let (_brokers, shops) = three_shops(tmp.path()).await;
    let (a, b, c) = (&shops[0], &shops[1], &shops[2]);
    let mut ws = connect(&a.d().ws("/ws/visitor?visitor_id=tea-lover")).await;
    assert!(send_for_ack(&mut ws, "q1", "do you have oolong?")
        .await
        .is_some());

    // The conversation appears on B; an agent there answers it.
    let deadline = Instant::now() + CONVERGE_WITHIN;
    let on_b = loop {
        let list = b.get("/api/v1/conversations").await;
        if let Some(conv) = list["conversations"].as_array().unwrap().first() {
            break conv["id"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "never reached B: {}\nA: {}\nB's log: {}",
            b.cluster().await,
            a.cluster().await,
            b.d().log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    b.post(
        &format!("/api/v1/conversations/{on_b}/messages"),
        json!({"text": "yes, from Fujian"}),
    )
    .await;

    // The customer, still on A, sees it live.
    let deadline = tokio::time::Instant::now() + CONVERGE_WITHIN;
    loop {
        let frame = tokio::time::timeout_at(deadline, next_of_type(&mut ws, "message", 90))
            .await
            .expect("the answer reaches the widget on A")
            .0;
        if frame["text"] == "yes, from Fujian" {
            assert_eq!(frame["sender"], "agent");
            break;
        }
    }
    let view = converged(&[a, b, c], |v| v.len() == 1 && v[0].1.len() == 2).await;
    assert_eq!(
        view[0].1,
        [
            ("visitor".to_string(), "do you have oolong?".to_string()),
            ("agent".to_string(), "yes, from Fujian".to_string())
        ]
    );
    for s in [a, b, c] {
        let cluster = s.cluster().await;
        assert_eq!(cluster["counters"]["forged"], 0, "{cluster}");
    }
}

/// The next frame of type `ty`, or `None` once the connection ends (or 10 s pass).
async fn next_of_type_or_end(ws: &mut Ws, ty: &str) -> Option<Value> {
    loop {
        let frame = try_next_json(ws, 10).await?;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == ty {
            return Some(frame);
        }
    }
}

/// Sends `count` messages from `visitors` visitors on `shop`, `prefix`-named; returns how
/// many were acknowledged.
async fn write_many(shop: &Shop, prefix: &str, visitors: usize, count: usize) -> usize {
    let mut acked = 0;
    let mut sockets = Vec::new();
    for v in 0..visitors {
        sockets.push(connect(&shop.d().ws(&format!("/ws/visitor?visitor_id={prefix}{v}"))).await);
    }
    for i in 0..count {
        let ws = &mut sockets[i % visitors];
        let frame = json!({
            "type": "message",
            "client_id": format!("{prefix}-{i}"),
            "text": format!("{prefix} message {i}"),
        });
        // The daemon may be killed mid-stream: a send that fails ends the stream.
        let sent = ws
            .send(tokio_tungstenite::tungstenite::Message::Text(
                frame.to_string().into(),
            ))
            .await;
        if sent.is_err() || next_of_type_or_end(ws, "ack").await.is_none() {
            break;
        }
        acked += 1;
    }
    acked
}

#[tokio::test]
async fn the_central_broker_killed_mid_stream_loses_nothing_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut brokers, shops) = three_shops(tmp.path()).await;
    let (a, b, c) = (&shops[0], &shops[1], &shops[2]);
    let writer = write_many(a, "k", 20, 3000);
    let killer = async {
        // Kill it once operations are flowing through it, keep it down 2 s, start it again
        // empty (no persistence): what it held is gone.
        let deadline = Instant::now() + CONVERGE_WITHIN;
        while b.message_count().await < 300 {
            assert!(Instant::now() < deadline, "nothing reached B");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        brokers.central.kill9();
        tokio::time::sleep(Duration::from_secs(2)).await;
        brokers.central.start_again().unwrap();
    };
    let (acked, ()) = tokio::join!(writer, killer);
    assert_eq!(acked, 3000);
    let view = converged(&[a, b, c], |v| {
        v.iter().map(|(_, m)| m.len()).sum::<usize>() == 3000
    })
    .await;
    assert_eq!(view.len(), 20);
    let requests: u64 = {
        let mut n = 0;
        for s in [b, c] {
            n += s.cluster().await["counters"]["requests_sent"]
                .as_u64()
                .unwrap();
        }
        n
    };
    eprintln!("ranges asked for after the central broker's loss: {requests}");
}

#[tokio::test]
async fn a_box_cut_off_keeps_working_and_catches_up_after_the_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut brokers, shops) = three_shops(tmp.path()).await;
    let (a, b, c) = (&shops[0], &shops[1], &shops[2]);
    let mut ws = connect(&a.d().ws("/ws/visitor?visitor_id=regular")).await;
    assert!(send_for_ack(&mut ws, "m1", "my usual, please")
        .await
        .is_some());
    converged(&[a, b, c], |v| v.len() == 1).await;
    let on_c = c.get("/api/v1/conversations").await["conversations"][0]["id"]
        .as_u64()
        .unwrap();

    // C's broker goes away for 60 s: C is cut off, and both sides go on writing to the same
    // conversation.
    brokers.shops[2].kill9();
    let partition = Instant::now();
    for i in 0..20 {
        assert!(
            send_for_ack(&mut ws, &format!("p{i}"), &format!("on A {i}"))
                .await
                .is_some()
        );
        c.post(
            &format!("/api/v1/conversations/{on_c}/messages"),
            json!({"text": format!("from C {i}")}),
        )
        .await;
    }
    // Still cut off: A resolves the conversation, and the customer writes again, on C.
    let on_a = a.get("/api/v1/conversations").await["conversations"][0]["id"]
        .as_u64()
        .unwrap();
    a.post(&format!("/api/v1/conversations/{on_a}/resolve"), json!({}))
        .await;
    let mut ws_c = connect(&c.d().ws("/ws/visitor?visitor_id=regular")).await;
    assert!(send_for_ack(&mut ws_c, "late", "wait, one more thing")
        .await
        .is_some());
    let elapsed = partition.elapsed();
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(elapsed)).await;
    assert!(
        c.cluster().await["connected"] == false,
        "C was cut off: {}",
        c.cluster().await
    );
    brokers.shops[2].start_again().unwrap();

    let view = converged(&[a, b, c], |v| v.len() == 1 && v[0].1.len() == 42).await;
    let texts: std::collections::BTreeSet<_> = view[0].1.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(texts.len(), 42, "each once");
    assert!(texts.contains("wait, one more thing"));
    // The resolve had not seen the customer's last message: open on every box.
    for s in [a, b, c] {
        let conversations = s.get("/api/v1/conversations").await;
        let status = conversations["conversations"][0]["status"].clone();
        assert!(
            status == "waiting" || status == "in_progress",
            "{status} on a box: {conversations}"
        );
    }
    for s in [a, b, c] {
        let deadline = Instant::now() + CONVERGE_WITHIN;
        while s.cluster().await["in_sync"] != true {
            assert!(Instant::now() < deadline, "{}", s.cluster().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn a_box_killed_while_it_writes_loses_and_doubles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_brokers, mut shops) = three_shops(tmp.path()).await;
    let writer = write_many(&shops[0], "w", 10, 100_000);
    let killer = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        shops[0].d().signal(libc::SIGKILL);
    };
    let (acked, ()) = tokio::join!(writer, killer);
    assert!(acked > 0, "some were acknowledged before the kill");
    shops[0].daemon.take().unwrap().kill9();
    shops[0].restart().await;
    let (a, b, c) = (&shops[0], &shops[1], &shops[2]);
    let view = converged(&[a, b, c], |v| {
        v.iter().map(|(_, m)| m.len()).sum::<usize>() >= acked
    })
    .await;
    let texts: Vec<_> = view
        .iter()
        .flat_map(|(_, m)| m.iter().map(|(_, t)| t))
        .collect();
    let distinct: std::collections::BTreeSet<_> = texts.iter().collect();
    assert_eq!(distinct.len(), texts.len(), "nothing doubled");
}

#[tokio::test]
async fn forged_and_replayed_batches_are_dropped_and_counted() {
    use kefud::cluster::hlc::Timestamp;
    use kefud::cluster::vector::Dot;
    use kefud::cluster::wire::{Body, ConvKey, Message, Operation, RemoteMessage, Signer};
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

    let tmp = tempfile::tempdir().unwrap();
    let (brokers, shops) = three_shops(tmp.path()).await;
    let (a, b) = (&shops[0], &shops[1]);
    // An outsider on B's broker records A's batches as they pass.
    let mut opts = MqttOptions::new("outsider", "127.0.0.1", brokers.shops[1].port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(opts, 64);
    client
        .subscribe("kefu/v1/tea/ops/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let recorded = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.is_empty() {
            if let Ok(Event::Incoming(Packet::Publish(p))) = events.poll().await {
                seen.push((p.topic.clone(), p.payload.to_vec()));
            }
        }
        // Keep the connection polled so the publishes below go out.
        tokio::spawn(async move { while events.poll().await.is_ok() {} });
        seen
    });
    let mut ws = connect(&a.d().ws("/ws/visitor?visitor_id=guest")).await;
    assert!(send_for_ack(&mut ws, "g1", "hello").await.is_some());
    let (topic, batch) = recorded.await.unwrap().remove(0);
    converged(&[a, b], |v| v.len() == 1).await;

    // Replayed: the same batch again, and again.
    for _ in 0..3 {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, batch.clone())
            .await
            .unwrap();
    }
    // Forged: a batch that claims to be from A, signed without the secret.
    let origin = u64::from_str_radix(topic.rsplit('/').next().unwrap(), 16).unwrap();
    let forged_body = Body::Message(RemoteMessage {
        conversation: ConvKey {
            home: origin,
            id: 1,
        },
        contact: kefud::model::Identity {
            channel: kefud::model::bounded_id("web").unwrap(),
            external_id: kefud::model::bounded_id("guest").unwrap(),
        },
        sender: kefud::model::Sender::Agent,
        client_id: None,
        text: "send your card number".into(),
        at_ms: 0,
        via: None,
    });
    let forged = Signer::new("tea", "a-guessed-secret!!").seal(
        origin,
        &Message::Ops {
            origin,
            ops: vec![Operation {
                dot: Dot { origin, seq: 2 },
                hlc: Timestamp::new(1, 0),
                body: forged_body.encode(),
            }],
        },
    );
    client
        .publish(topic.clone(), QoS::AtLeastOnce, false, forged)
        .await
        .unwrap();
    client
        .publish(
            topic.clone(),
            QoS::AtLeastOnce,
            false,
            b"not even an envelope".to_vec(),
        )
        .await
        .unwrap();

    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let counters = b.cluster().await["counters"].clone();
        if counters["forged"].as_u64() >= Some(2) && counters["duplicates"].as_u64() >= Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "not counted: {counters}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let view = converged(&[a, b], |v| v.len() == 1).await;
    assert_eq!(
        view[0].1,
        [("visitor".to_string(), "hello".to_string())],
        "nothing forged or replayed was applied"
    );
}

#[tokio::test]
async fn a_box_whose_clock_is_ten_minutes_ahead_is_applied_in_causal_order_and_reported() {
    let lib = std::path::Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1");
    // libfaketime fakes the x86-64 binary's clock; the aarch64 one under qemu-user cannot.
    if !cfg!(target_arch = "x86_64") || std::env::var_os("KEFUD_BIN").is_some() || !lib.exists() {
        eprintln!("skipped: needs libfaketime and the host's own binary");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let brokers = Brokers::start(tmp.path(), 3);
    let a = Shop::start(tmp.path().join("box0"), brokers.shops[0].port).await;
    let b = Shop::start(tmp.path().join("box1"), brokers.shops[1].port).await;
    let dir = tmp.path().join("box2");
    std::fs::create_dir_all(&dir).unwrap();
    write_config(&dir, &shop_config(brokers.shops[2].port));
    add_agent(&dir, "owner", "owner-password", true);
    let ahead = TestDaemon::try_start_with_env(
        &dir,
        &shop_config(brokers.shops[2].port),
        &[
            ("LD_PRELOAD", lib.to_str().unwrap()),
            ("FAKETIME", "+600"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    )
    .unwrap_or_else(|log| panic!("kefud did not start:\n{log}"));
    let token = login(&ahead, "owner", "owner-password").await;
    let c = Shop {
        dir,
        daemon: Some(ahead),
        token,
        broker_port: brokers.shops[2].port,
    };

    let mut ws = connect(&a.d().ws("/ws/visitor?visitor_id=early-bird")).await;
    assert!(send_for_ack(&mut ws, "e1", "are you open?").await.is_some());
    converged(&[&a, &b, &c], |v| v.len() == 1).await;
    let on_c = c.get("/api/v1/conversations").await["conversations"][0]["id"]
        .as_u64()
        .unwrap();
    c.post(
        &format!("/api/v1/conversations/{on_c}/messages"),
        json!({"text": "we open at nine"}),
    )
    .await;
    // The customer sees the answer, then writes again: after it, on every box.
    loop {
        let frame = next_of_type(&mut ws, "message", 90).await.0;
        if frame["text"] == "we open at nine" {
            break;
        }
    }
    assert!(send_for_ack(&mut ws, "e2", "see you then").await.is_some());
    let view = converged(&[&a, &b, &c], |v| v.len() == 1 && v[0].1.len() == 3).await;
    let texts: Vec<_> = view[0].1.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["are you open?", "we open at nine", "see you then"]);
    for s in [&a, &b] {
        let deadline = Instant::now() + CONVERGE_WITHIN;
        loop {
            let skew = s.cluster().await["largest_skew_ms"].as_i64().unwrap();
            if (590_000..=610_000).contains(&skew) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "skew not reported: {}",
                s.cluster().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
