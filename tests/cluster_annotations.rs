//! Conversation labels and customer ratings in cluster mode with real processes on loopback:
//! three kefud boxes, each with its own mosquitto bridged to a central one
//! (`common/cluster.rs`).
//!
//! A label an agent on B puts on a conversation shows on A and C (by name: A and C define it
//! if they lacked it); label edits made on A and on C while C is cut off converge to one
//! label set on every box once it is back; a customer's rating given on A, the customer's box,
//! shows on B and C in the conversation's row and the ratings report.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::{json, Value};

/// The one conversation `shop` lists.
async fn only_conversation(shop: &Shop) -> Value {
    let list = shop.get("/api/v1/conversations?limit=500").await;
    let conversations = list["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "{list}");
    conversations[0].clone()
}

/// Defines a label on `shop` (its owner is an admin): its id there.
async fn define(shop: &Shop, name: &str, color: &str) -> u64 {
    let label = shop
        .post("/api/v1/labels", json!({"name": name, "color": color}))
        .await;
    label["id"].as_u64().unwrap()
}

/// The id `shop` gives the label `name` (it may have defined it for another box's write).
async fn label_id(shop: &Shop, name: &str) -> u64 {
    let list = shop.get("/api/v1/labels").await;
    let found = list["labels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name);
    found.unwrap_or_else(|| panic!("no label {name}: {list}"))["id"]
        .as_u64()
        .unwrap()
}

async fn put_labels(shop: &Shop, names: &[&str]) {
    let conversation = only_conversation(shop).await["id"].as_u64().unwrap();
    let mut ids = Vec::new();
    for name in names {
        ids.push(label_id(shop, name).await);
    }
    let resp = reqwest::Client::new()
        .put(
            shop.d()
                .http(&format!("/api/v1/conversations/{conversation}/labels")),
        )
        .bearer_auth(&shop.token)
        .json(&json!({ "labels": ids }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// The names of the labels on `shop`'s one conversation (its row's ids, named by its
/// definitions), sorted.
async fn labels_on(shop: &Shop) -> Vec<String> {
    let row = only_conversation(shop).await;
    let definitions = shop.get("/api/v1/labels").await;
    let mut names: Vec<String> = (row["labels"].as_array().unwrap().iter())
        .map(|id| {
            let found = definitions["labels"].as_array().unwrap().iter();
            let mut found = found.filter(|l| l["id"] == *id);
            found.next().unwrap()["name"].as_str().unwrap().to_string()
        })
        .collect();
    names.sort();
    names
}

/// Polls until every box shows the same label names on the conversation, which `done`
/// accepts.
async fn same_labels(shops: &[&Shop], done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let mut views = Vec::new();
        for s in shops {
            views.push(labels_on(s).await);
        }
        if views.windows(2).all(|w| w[0] == w[1]) && done(&views[0]) {
            return views.remove(0);
        }
        assert!(Instant::now() < deadline, "labels never agreed: {views:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn colour(shop: &Shop, name: &str) -> String {
    let list = shop.get("/api/v1/labels").await;
    let found = list["labels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name);
    found.unwrap()["color"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn labels_and_ratings_given_on_one_box_show_on_every_box() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut brokers, shops) = three_shops(tmp.path()).await;
    let (a, b, c) = (&shops[0], &shops[1], &shops[2]);
    let mut on_a = connect(&a.d().ws("/ws/visitor?visitor_id=tea-lover")).await;
    assert!(send_for_ack(&mut on_a, "a1", "hello from the counter")
        .await
        .is_some());
    converged(&[a, b, c], |v| v.len() == 1).await;

    // B's admin defines two labels, C's one of the same name in another colour; an agent on B
    // puts both on the conversation.
    define(b, "VIP", "#ff0000").await;
    define(b, "退款", "#0000ff").await;
    define(c, "VIP", "#00ff00").await;
    put_labels(b, &["VIP", "退款"]).await;
    let both = vec!["VIP".to_string(), "退款".into()];
    same_labels(&[a, b, c], |l| l == both).await;
    assert_eq!(colour(a, "VIP").await, "#ff0000", "A lacked it: B's colour");
    assert_eq!(
        colour(c, "VIP").await,
        "#00ff00",
        "C had it: its own colour"
    );

    // C is cut off for a few seconds; agents on A and C edit the labels meanwhile.
    brokers.shops[2].kill9();
    let cut = Instant::now();
    put_labels(c, &["退款"]).await;
    put_labels(a, &["VIP"]).await;
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(cut.elapsed())).await;
    brokers.shops[2].start_again().unwrap();
    let agreed = same_labels(&[a, b, c], |l| l != both).await;
    assert!(agreed == ["VIP"] || agreed == ["退款"], "{agreed:?}");

    // The customer's conversation is resolved on A and they rate it there: B and C show it.
    let id = only_conversation(a).await["id"].as_u64().unwrap();
    a.post(&format!("/api/v1/conversations/{id}/resolve"), json!({}))
        .await;
    let resp = reqwest::Client::new()
        .post(a.d().http("/api/v1/visitor/rating"))
        .json(&json!({"visitor_id": "tea-lover", "conversation_id": id, "score": 4, "comment": "很快"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let deadline = Instant::now() + CONVERGE_WITHIN;
    for s in [b, c] {
        while only_conversation(s).await["rating"] != 4 {
            assert!(Instant::now() < deadline, "no rating on {:?}", s.dir);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let report = s.get("/api/v1/reports/ratings?days=7").await;
        let day = &report["days"][0];
        assert_eq!(
            (day["count"].as_u64(), day["average"].as_f64()),
            (Some(1), Some(4.0)),
            "{report}"
        );
    }
    for s in [a, b, c] {
        assert_eq!(s.cluster().await["counters"]["forged"], 0);
    }
}
