//! Contacts in cluster mode with real processes on loopback (three kefud boxes, each with its
//! own mosquitto bridged to a central one): a link made on one box joins the two contacts and
//! their conversations on every box; a contact's name and details, given in the chat's form or
//! edited by an agent on one box, show on the others;
//! two boxes renaming it while one of them is cut off agree on one name once healed.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::{json, Value};

/// The contact id `shop` knows the web visitor `visitor` by (from its conversation list).
async fn contact_of(shop: &Shop, visitor: &str) -> u64 {
    let list = shop.get("/api/v1/conversations?limit=500").await;
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == visitor)
        .unwrap_or_else(|| panic!("no conversation of {visitor}: {list}"))["contact_id"]
        .as_u64()
        .unwrap()
}

/// The one contact `shop` lists a conversation for.
async fn only_contact(shop: &Shop) -> Value {
    let list = shop.get("/api/v1/conversations?limit=500").await;
    let conversations = list["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "{list}");
    let id = conversations[0]["contact_id"].as_u64().unwrap();
    shop.get(&format!("/api/v1/contacts/{id}")).await
}

async fn rename(shop: &Shop, name: &str) {
    let id = only_contact(shop).await["id"].as_u64().unwrap();
    let resp = reqwest::Client::new()
        .put(shop.d().http(&format!("/api/v1/contacts/{id}")))
        .bearer_auth(&shop.token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// Polls until every shop's one contact has the same name and `done` accepts it.
async fn same_name(shops: &[&Shop], done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let mut names = Vec::new();
        for s in shops {
            names.push(only_contact(s).await["name"].as_str().unwrap().to_string());
        }
        if names.windows(2).all(|w| w[0] == w[1]) && done(&names[0]) {
            return names.remove(0);
        }
        assert!(Instant::now() < deadline, "names never agreed: {names:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_link_made_on_one_box_joins_one_customer_everywhere_and_names_follow_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut brokers, shops) = three_shops(tmp.path()).await;
    let (a, b, c) = (&shops[0], &shops[1], &shops[2]);
    // The same person writes in the shop (A) and, from their phone, to the other shop (B).
    let mut on_a = connect(&a.d().ws("/ws/visitor?visitor_id=tea-lover")).await;
    assert!(send_for_ack(&mut on_a, "a1", "hello from the counter")
        .await
        .is_some());
    let mut on_b = connect(&b.d().ws("/ws/visitor?visitor_id=tea-lover-phone")).await;
    assert!(send_for_ack(&mut on_b, "b1", "and from my phone")
        .await
        .is_some());
    converged(&[a, b, c], |v| v.len() == 2).await;

    // An agent on C sees they are one person.
    let (keep, merged) = (
        contact_of(c, "tea-lover").await,
        contact_of(c, "tea-lover-phone").await,
    );
    let linked = c
        .post(
            &format!("/api/v1/contacts/{keep}/link"),
            json!({ "contact_id": merged }),
        )
        .await;
    assert!(linked["conversation_id"].is_u64(), "{linked}");
    let both = "web:tea-lover + web:tea-lover-phone";
    let view = converged(&[a, b, c], |v| v.len() == 1 && v[0].0 == both).await;
    assert_eq!(view[0].1.len(), 2, "{view:?}");

    // The customer writes again on B: into the one conversation, on every box.
    assert!(send_for_ack(&mut on_b, "b2", "is my order ready?")
        .await
        .is_some());
    let view = converged(&[a, b, c], |v| v.len() == 1 && v[0].1.len() == 3).await;
    let texts: Vec<&str> = view[0].1.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "hello from the counter",
            "and from my phone",
            "is my order ready?"
        ]
    );
    for s in [a, b, c] {
        let list = s.get("/api/v1/conversations?status=open").await;
        assert_eq!(list["conversations"].as_array().unwrap().len(), 1, "{list}");
    }

    // The customer fills the chat's form on A: every box shows it.
    let resp = reqwest::Client::new()
        .post(a.d().http("/api/v1/visitor/profile"))
        .json(&json!({"visitor_id": "tea-lover", "name": "Chen", "phone": "+86 138 0000 0000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    same_name(&[a, b, c], |n| n == "Chen").await;

    // An agent on B names the customer: A and C show it, with the phone the form gave.
    rename(b, "Ms Chen").await;
    same_name(&[a, b, c], |n| n == "Ms Chen").await;
    for s in [a, b, c] {
        assert_eq!(only_contact(s).await["phone"], "+86 138 0000 0000");
    }

    // C is cut off for a few seconds; agents on A and C rename the customer meanwhile.
    brokers.shops[2].kill9();
    let cut = Instant::now();
    rename(c, "Chen Li (from C)").await;
    rename(a, "Li Chen (from A)").await;
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(cut.elapsed())).await;
    brokers.shops[2].start_again().unwrap();
    let name = same_name(&[a, b, c], |n| n != "Ms Chen").await;
    assert!(
        name == "Chen Li (from C)" || name == "Li Chen (from A)",
        "{name}"
    );
    // Still one customer, one conversation, the same everywhere.
    let view = converged(&[a, b, c], |v| v.len() == 1).await;
    assert_eq!(view[0].0, both);
    for s in [a, b, c] {
        let contact = only_contact(s).await;
        assert_eq!(contact["identities"].as_array().unwrap().len(), 2);
        assert_eq!(s.cluster().await["counters"]["forged"], 0);
    }
}
