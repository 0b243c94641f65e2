//! Who holds a conversation across a cluster, with real processes on loopback (three kefud
//! boxes, each with its own mosquitto bridged to a central one): agents' presence reaches
//! every box; an agent on the customer's box gives the conversation to an agent who signs in
//! on another box, and every box shows who holds it; two agents who take it while their boxes
//! are cut off from each other both keep it — a conflict every box shows — until one of them
//! assigns it again.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::{json, Value};

/// Polls `shop`'s conversation `id` until `done` holds of its row.
async fn row_until(shop: &Shop, id: u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let row = shop.get(&format!("/api/v1/conversations/{id}")).await;
        if done(&row) {
            return row;
        }
        assert!(Instant::now() < deadline, "{what}: {row}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one conversation `shop` holds.
async fn only_conversation(shop: &Shop) -> u64 {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let list = shop.get("/api/v1/conversations").await;
        if let Some(id) = list["conversations"][0]["id"].as_u64() {
            return id;
        }
        assert!(Instant::now() < deadline, "no conversation arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn node_of(shop: &Shop) -> String {
    shop.cluster().await["node"].as_str().unwrap().to_string()
}

/// (node, agent) of each holder in a conversation row.
fn holders(row: &Value) -> Vec<(String, u64)> {
    row["holders"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|v| {
                    (
                        v["node"].as_str().unwrap().to_string(),
                        v["agent"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_conversation_is_held_across_boxes_and_assignments_made_apart_are_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut brokers, shops) = three_shops(tmp.path()).await;
    let (a, b, c) = (&shops[0], &shops[1], &shops[2]);
    let (node_a, node_b, node_c) = (node_of(a).await, node_of(b).await, node_of(c).await);

    // B's owner opens the console (the agent feed): online, as every box hears.
    let token_b = b.token.clone();
    let _feed_b = connect(&b.d().ws(&format!("/ws/agent?token={token_b}"))).await;
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let view = a.cluster().await;
        let online = view["peers"].as_array().unwrap().iter().any(|p| {
            p["node"] == node_b.as_str()
                && p["agents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|g| g["id"] == 1 && g["presence"] == "online" && g["name"] == "owner")
        });
        if online {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's agent never showed online on A: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A customer writes on A; A's owner gives the conversation to B's owner.
    let mut ws = connect(&a.d().ws("/ws/visitor?visitor_id=tea-fan")).await;
    assert!(send_for_ack(&mut ws, "q1", "any oolong left?")
        .await
        .is_some());
    let on_a = only_conversation(a).await;
    let (on_b, on_c) = (only_conversation(b).await, only_conversation(c).await);
    // Refusals first: an agent no box has heard of, a node that is no node.
    let resp = reqwest::Client::new()
        .post(a.d().http(&format!("/api/v1/conversations/{on_a}/assign")))
        .bearer_auth(&a.token)
        .json(&json!({"agent_id": 99, "node": node_b}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "bad_agent");
    let resp = reqwest::Client::new()
        .post(a.d().http(&format!("/api/v1/conversations/{on_a}/assign")))
        .bearer_auth(&a.token)
        .json(&json!({"agent_id": 1, "node": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let row = a
        .post(
            &format!("/api/v1/conversations/{on_a}/assign"),
            json!({"agent_id": 1, "node": node_b}),
        )
        .await;
    assert_eq!(holders(&row), [(node_b.clone(), 1)]);
    assert_eq!(row["assignee"], Value::Null, "no agent of A holds it");
    assert_eq!(row["status"], "in_progress");
    let row = row_until(b, on_b, "B's owner holds it on B", |r| r["assignee"] == 1).await;
    assert_eq!(holders(&row), [(node_b.clone(), 1)]);
    let row = row_until(c, on_c, "C shows B's owner", |r| !holders(r).is_empty()).await;
    assert_eq!(holders(&row), [(node_b.clone(), 1)]);
    assert_eq!(row["conflict"], Value::Null, "no conflict");

    // C is cut off; meanwhile A's owner and C's owner each take it.
    brokers.shops[2].kill9();
    let deadline = Instant::now() + CONVERGE_WITHIN;
    while c.cluster().await["connected"] != false {
        assert!(Instant::now() < deadline, "C stayed connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.post(&format!("/api/v1/conversations/{on_a}/assign"), json!({}))
        .await;
    c.post(&format!("/api/v1/conversations/{on_c}/assign"), json!({}))
        .await;
    // B hears A's at once: A's owner replaced B's.
    row_until(b, on_b, "A's assignment on B", |r| {
        holders(r) == [(node_a.clone(), 1)]
    })
    .await;
    brokers.shops[2].start_again().unwrap();

    // Healed: every box holds both, a conflict, and each of the two agents still sees it as
    // theirs on their own box.
    let both = {
        let mut h = vec![(node_a.clone(), 1), (node_c.clone(), 1)];
        h.sort();
        h
    };
    for (shop, id) in [(a, on_a), (b, on_b), (c, on_c)] {
        let row = row_until(shop, id, "the conflict", |r| {
            let mut h = holders(r);
            h.sort();
            h == both && r["conflict"] == true
        })
        .await;
        assert_eq!(row["status"], "in_progress");
    }
    assert_eq!(
        a.get(&format!("/api/v1/conversations/{on_a}")).await["assignee"],
        1
    );
    assert_eq!(
        c.get(&format!("/api/v1/conversations/{on_c}")).await["assignee"],
        1
    );
    assert_eq!(
        b.get(&format!("/api/v1/conversations/{on_b}")).await["assignee"],
        Value::Null
    );

    // A's owner settles it by giving it to C's owner: one holder everywhere.
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let resp = reqwest::Client::new()
            .post(a.d().http(&format!("/api/v1/conversations/{on_a}/assign")))
            .bearer_auth(&a.token)
            .json(&json!({"agent_id": 1, "node": node_c}))
            .send()
            .await
            .unwrap();
        if resp.status().is_success() {
            break;
        }
        // C's roster reaches A again after the partition (retained, republished).
        assert!(
            Instant::now() < deadline,
            "C's agent unknown on A: {}",
            resp.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (shop, id) in [(a, on_a), (b, on_b), (c, on_c)] {
        row_until(shop, id, "settled", |r| {
            holders(r) == [(node_c.clone(), 1)] && r["conflict"] == Value::Null
        })
        .await;
    }
    assert_eq!(
        c.get(&format!("/api/v1/conversations/{on_c}")).await["assignee"],
        1
    );
    assert_eq!(
        a.get(&format!("/api/v1/conversations/{on_a}")).await["assignee"],
        Value::Null
    );
}

/// Whether `shop` sees box `node`'s agent 1 online.
async fn sees_online(shop: &Shop, node: &str) -> bool {
    let view = shop.cluster().await;
    view["peers"].as_array().unwrap().iter().any(|p| {
        p["node"] == node
            && p["online"] == true
            && p["agents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["id"] == 1 && g["presence"] == "online")
    })
}

#[tokio::test]
async fn a_customer_goes_to_an_agent_of_another_box_unless_that_box_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut brokers, shops) = three_shops(tmp.path()).await;
    let (a, b) = (&shops[0], &shops[1]);
    let node_b = node_of(b).await;
    // Only B's owner has a console open: A's customers can go nowhere but to them.
    let token_b = b.token.clone();
    let _feed_b = connect(&b.d().ws(&format!("/ws/agent?token={token_b}"))).await;
    let deadline = Instant::now() + CONVERGE_WITHIN;
    while !sees_online(a, &node_b).await {
        assert!(
            Instant::now() < deadline,
            "B's agent never showed online on A"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The central broker goes away: every box still reaches its own broker (no last will
    // fires), but A stops hearing B and must stop counting B's agent.
    brokers.central.kill9();
    let deadline = Instant::now() + CONVERGE_WITHIN;
    while sees_online(a, &node_b).await {
        assert!(
            Instant::now() < deadline,
            "A still counts B's agent with the bridge cut"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut ws = connect(&a.d().ws("/ws/visitor?visitor_id=late-evening")).await;
    assert!(send_for_ack(&mut ws, "q1", "still open?").await.is_some());
    let on_a = only_conversation(a).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let row = a.get(&format!("/api/v1/conversations/{on_a}")).await;
    assert_eq!(row["status"], "waiting", "nobody reachable took it: {row}");
    assert!(holders(&row).is_empty());

    // The bridge is back: A's queue gives the waiting customer to B's owner, who holds it on B.
    brokers.central.start_again().unwrap();
    let row = row_until(a, on_a, "given to B's owner", |r| {
        holders(r) == [(node_b.clone(), 1)]
    })
    .await;
    assert_eq!(row["status"], "in_progress");
    assert_eq!(row["assignee"], Value::Null);
    let on_b = only_conversation(b).await;
    row_until(b, on_b, "B's owner holds it on B", |r| r["assignee"] == 1).await;
}
