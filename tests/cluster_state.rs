//! Cluster mode's knowledge base and delivery outcomes with real processes on loopback: three
//! kefud boxes, each with its own mosquitto bridged to a central one (`common/cluster.rs`).
//!
//! A knowledge-base entry put on box A answers a customer on box C (C's bot, retrained); a
//! put on B and a delete on C made while C is cut off converge to the same knowledge base on
//! every box once it is back; a reply written on B to a customer of A's MQTT channel is
//! delivered by A, and every box's message listing shows it delivered.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

async fn put_entry(shop: &Shop, intent: &str, examples: &[&str], answer: &str) {
    let resp = reqwest::Client::new()
        .put(shop.d().http(&format!("/api/v1/kb/entries/{intent}")))
        .bearer_auth(&shop.token)
        .json(&json!({"examples": examples, "answer": answer}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "PUT {intent}");
}

async fn delete_entry(shop: &Shop, intent: &str) {
    let resp = reqwest::Client::new()
        .delete(shop.d().http(&format!("/api/v1/kb/entries/{intent}")))
        .bearer_auth(&shop.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "DELETE {intent}");
}

/// A box's knowledge base as the API lists it: (intent, answer, examples), sorted.
async fn kb(shop: &Shop) -> Vec<(String, String, Value)> {
    let list = shop.get("/api/v1/kb/entries").await;
    let mut out: Vec<_> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["intent"].as_str().unwrap().to_string(),
                e["answer"].as_str().unwrap_or("").to_string(),
                e["examples"].clone(),
            )
        })
        .collect();
    out.sort_by(|l, r| l.0.cmp(&r.0));
    out
}

/// Polls until every box lists the same knowledge base with these (intent, answer) pairs.
async fn kb_converged(shops: &[&Shop], expected: &[(&str, &str)]) {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let mut views = Vec::new();
        for s in shops {
            views.push(kb(s).await);
        }
        let pairs: Vec<(&str, &str)> = views[0]
            .iter()
            .map(|(i, a, _)| (i.as_str(), a.as_str()))
            .collect();
        if views.windows(2).all(|w| w[0] == w[1]) && pairs == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the knowledge bases did not converge on {expected:?}:\n{views:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_entry_put_on_a_answers_on_c_and_a_partitions_put_and_delete_converge() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut brokers, shops) = three_shops(tmp.path()).await;
    let (a, b, c) = (&shops[0], &shops[1], &shops[2]);
    put_entry(
        a,
        "hours",
        &["when are you open", "opening hours"],
        "9 to 6",
    )
    .await;
    put_entry(
        a,
        "parking",
        &["where can i park", "car park"],
        "Behind the shop",
    )
    .await;
    put_entry(a, "wifi", &["wifi password", "internet access"], "teatime").await;
    kb_converged(
        &[a, b, c],
        &[
            ("hours", "9 to 6"),
            ("parking", "Behind the shop"),
            ("wifi", "teatime"),
        ],
    )
    .await;

    // C's bot answers from what A put, and C retrained its intent model for it.
    let mut ws = connect(&c.d().ws("/ws/visitor?visitor_id=early-bird")).await;
    assert!(send_for_ack(&mut ws, "q1", "when are you open")
        .await
        .is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (frame, _) = tokio::time::timeout_at(deadline, next_of_type(&mut ws, "message", 30))
            .await
            .expect("C's bot answers");
        if frame["sender"] == "bot" {
            assert_eq!(frame["text"], "9 to 6");
            break;
        }
    }
    // Enough examples for a trained model: C trains one after A's change, as after its own.
    let menu: Vec<String> = (0..14)
        .map(|i| format!("menu question number {i}"))
        .collect();
    let menu: Vec<&str> = menu.iter().map(String::as_str).collect();
    put_entry(a, "menu", &menu, "See the board").await;
    let deadline = Instant::now() + CONVERGE_WITHIN;
    while !c.d().log().contains("intent model trained") {
        assert!(
            Instant::now() < deadline,
            "C retrains after another box's change:\n{}",
            c.d().log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // C is cut off for a few seconds. B replaces "hours" and deletes "parking"; later by the
    // clock, C deletes "hours" and puts "parking" back: the later write of each wins.
    brokers.shops[2].kill9();
    let cut = Instant::now();
    put_entry(b, "hours", &["when are you open"], "from B").await;
    delete_entry(b, "parking").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    delete_entry(c, "hours").await;
    put_entry(c, "parking", &["where can i park"], "from C").await;
    put_entry(b, "tea", &["do you sell oolong"], "Yes").await;
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(cut.elapsed())).await;
    brokers.shops[2].start_again().unwrap();
    kb_converged(
        &[a, b, c],
        &[
            ("menu", "See the board"),
            ("parking", "from C"),
            ("tea", "Yes"),
            ("wifi", "teatime"),
        ],
    )
    .await;
}

/// A client whose event loop runs in the background (rumqttc only sends while polled).
async fn mqtt_customer(port: u16) -> AsyncClient {
    let mut opts = MqttOptions::new("kiosk-client", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(opts, 16);
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) => return,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    client
}

/// The conversation of `external_id` on a box, once it is there.
async fn conversation_of(shop: &Shop, external_id: &str) -> u64 {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let list = shop.get("/api/v1/conversations?status=all").await;
        let found = list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["external_id"] == external_id)
            .map(|c| c["id"].as_u64().unwrap());
        if let Some(id) = found {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "no conversation of {external_id}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The delivery state a box's message listing shows for the reply `text` of `external_id`,
/// and the reply's id there.
async fn delivery_shown(shop: &Shop, external_id: &str, text: &str) -> Option<(String, u64)> {
    let id = conversation_of(shop, external_id).await;
    let thread = shop
        .get(&format!("/api/v1/conversations/{id}/messages"))
        .await;
    let reply = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == text)?
        .clone();
    let state = reply["delivery"].as_str()?.to_string();
    Some((state, reply["id"].as_u64().unwrap()))
}

#[tokio::test]
async fn a_replys_delivery_by_its_home_box_shows_the_same_on_every_box() {
    let tmp = tempfile::tempdir().unwrap();
    let brokers = Brokers::start(tmp.path(), 3);
    // Box A runs the MQTT channel (its adapter on A's broker); B and C do not.
    let a_dir = tmp.path().join("box0");
    std::fs::create_dir_all(&a_dir).unwrap();
    let config = shop_config(brokers.shops[0].port).replace("[mqtt]\n", "[mqtt]\nenabled = true\n");
    add_agent(&a_dir, "owner", "owner-password", true);
    let daemon = TestDaemon::start(&a_dir, &config);
    let token = login(&daemon, "owner", "owner-password").await;
    let a = Shop {
        dir: a_dir,
        daemon: Some(daemon),
        token,
        broker_port: brokers.shops[0].port,
    };
    let b = Shop::start(tmp.path().join("box1"), brokers.shops[1].port).await;
    let c = Shop::start(tmp.path().join("box2"), brokers.shops[2].port).await;

    // The customer writes on the MQTT channel (again until A's adapter has subscribed).
    let kiosk = mqtt_customer(brokers.shops[0].port).await;
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        kiosk
            .publish(
                "kefu/in/app/kiosk-7",
                QoS::AtLeastOnce,
                false,
                json!({"client_id": "k1", "text": "is the oolong in?"}).to_string(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let list = a.get("/api/v1/conversations?status=all").await;
        if !list["conversations"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never took the customer's message"
        );
    }

    // An agent on B answers; A's channel delivers the reply; every box shows it delivered.
    let on_b = conversation_of(&b, "kiosk-7").await;
    b.post(
        &format!("/api/v1/conversations/{on_b}/messages"),
        json!({"text": "yes, fresh today"}),
    )
    .await;
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let mut shown = Vec::new();
        for s in [&a, &b, &c] {
            shown.push(delivery_shown(s, "kiosk-7", "yes, fresh today").await);
        }
        if shown
            .iter()
            .all(|s| s.as_ref().is_some_and(|(state, _)| state == "delivered"))
        {
            // The delivery the console asks for (a dead mark's reason) is there too.
            for (s, (_, id)) in [&a, &b, &c].into_iter().zip(shown.into_iter().flatten()) {
                let delivery = s.get(&format!("/api/v1/messages/{id}/delivery")).await;
                assert_eq!(delivery["state"], "delivered", "{delivery}");
                assert_eq!(delivery["external_id"], "kiosk-7", "{delivery}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivery shown on A, B, C: {shown:?}\nA: {}",
            a.cluster().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
