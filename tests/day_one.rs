//! Issue 17's API on the real binary: labels (definitions, on conversations, the inbox's
//! filters, bulk resolve), ratings (a customer rates their own resolved conversation; the
//! report and its CSV), contacts agents edit, the widget's profile form, signed identities
//! (a forged one refused), each with its authorization and bad input; and everything
//! journaled survives a kill -9.

mod common;

use common::*;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

struct Api {
    c: Client,
    base: String,
}

impl Api {
    fn new(d: &TestDaemon) -> Api {
        Api {
            c: Client::new(),
            base: d.http(""),
        }
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.c.request(method, format!("{}{path}", self.base));
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
}

/// A visitor writes one message; the conversation's id (from the agent API).
async fn visitor_writes(d: &TestDaemon, api: &Api, token: &str, visitor: &str) -> u64 {
    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id={visitor}"))).await;
    send_for_ack(&mut ws, "m1", "hello, do you have green tea?")
        .await
        .expect("acked");
    let (_, v) = api
        .call(Some(token), Method::GET, "/api/v1/conversations", None)
        .await;
    v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == visitor)
        .unwrap_or_else(|| panic!("{visitor}'s conversation listed: {v}"))["id"]
        .as_u64()
        .unwrap()
}

fn start() -> (tempfile::TempDir, TestDaemon) {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "boss", "boss-password-1", true);
    add_agent(dir.path(), "ann", "ann-password-12", false);
    let d = TestDaemon::start(dir.path(), "");
    (dir, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_are_defined_by_admins_put_on_conversations_and_filter_the_inbox() {
    let (_dir, d) = start();
    let api = Api::new(&d);
    let boss = login(&d, "boss", "boss-password-1").await;
    let ann = login(&d, "ann", "ann-password-12").await;

    // Definitions: admins only, checked.
    let (s, _) = api.call(None, Method::GET, "/api/v1/labels", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = api
        .call(
            Some(&ann),
            Method::POST,
            "/api/v1/labels",
            Some(json!({"name": "VIP", "color": "#ff0000"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    for (body, code) in [
        (json!({"name": "", "color": "#ff0000"}), "bad_label_name"),
        (
            json!({"name": "x".repeat(41), "color": "#ff0000"}),
            "bad_label_name",
        ),
        (json!({"name": "VIP", "color": "red"}), "bad_label_color"),
        (
            json!({"name": "VIP", "color": "#ff00zz"}),
            "bad_label_color",
        ),
    ] {
        let (s, v) = api
            .call(Some(&boss), Method::POST, "/api/v1/labels", Some(body))
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code))
        );
    }
    let (s, vip) = api
        .call(
            Some(&boss),
            Method::POST,
            "/api/v1/labels",
            Some(json!({"name": "VIP", "color": "#FF0000"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(vip["color"], "#ff0000");
    let (s, v) = api
        .call(
            Some(&boss),
            Method::POST,
            "/api/v1/labels",
            Some(json!({"name": "VIP", "color": "#00ff00"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("label_exists"))
    );
    let (_, refund) = api
        .call(
            Some(&boss),
            Method::POST,
            "/api/v1/labels",
            Some(json!({"name": "退款", "color": "#0000ff"})),
        )
        .await;
    let (vip_id, refund_id) = (vip["id"].as_u64().unwrap(), refund["id"].as_u64().unwrap());
    let (s, v) = api
        .call(Some(&ann), Method::GET, "/api/v1/labels", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["labels"].as_array().unwrap().len(), 2);

    // On conversations: any agent; unknown ids refused; filters.
    let first = visitor_writes(&d, &api, &ann, "label-a").await;
    let second = visitor_writes(&d, &api, &ann, "label-b").await;
    let (s, v) = api
        .call(
            Some(&ann),
            Method::PUT,
            &format!("/api/v1/conversations/{first}/labels"),
            Some(json!({"labels": [vip_id, 999]})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_label"))
    );
    let (s, v) = api
        .call(
            None,
            Method::PUT,
            &format!("/api/v1/conversations/{first}/labels"),
            Some(json!({"labels": [vip_id]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = api
        .call(
            Some(&ann),
            Method::PUT,
            "/api/v1/conversations/424242/labels",
            Some(json!({"labels": [vip_id]})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = api
        .call(
            Some(&ann),
            Method::PUT,
            &format!("/api/v1/conversations/{first}/labels"),
            Some(json!({"labels": [refund_id, vip_id, vip_id]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut both = vec![vip_id, refund_id];
    both.sort_unstable();
    assert_eq!(v["labels"], json!(both));
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/conversations?label={vip_id}"),
            None,
        )
        .await;
    let ids: Vec<u64> = v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![first]);
    assert_eq!(v["conversations"][0]["labels"], json!(both));

    // By agent: ann takes the second one.
    let (s, _) = api
        .call(
            Some(&ann),
            Method::POST,
            &format!("/api/v1/conversations/{second}/assign"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            "/api/v1/conversations?assignee=me",
            None,
        )
        .await;
    let ids: Vec<u64> = v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![second]);
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            "/api/v1/conversations?assignee=none",
            None,
        )
        .await;
    assert!(v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["id"] != second));
    let (s, v) = api
        .call(
            Some(&ann),
            Method::GET,
            "/api/v1/conversations?assignee=someone",
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_assignee"))
    );

    // A deleted label disappears from conversations and filters.
    let (s, _) = api
        .call(
            Some(&ann),
            Method::DELETE,
            &format!("/api/v1/labels/{refund_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .call(
            Some(&boss),
            Method::DELETE,
            &format!("/api/v1/labels/{refund_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/conversations/{first}"),
            None,
        )
        .await;
    assert_eq!(v["labels"], json!([vip_id]));
    // A label made after it never takes its id: it does not appear on that conversation.
    let (_, fresh) = api
        .call(
            Some(&boss),
            Method::POST,
            "/api/v1/labels",
            Some(json!({"name": "New", "color": "#123456"})),
        )
        .await;
    assert_ne!(fresh["id"].as_u64(), Some(refund_id));
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/conversations/{first}"),
            None,
        )
        .await;
    assert_eq!(v["labels"], json!([vip_id]));

    // Bulk resolve: each on its own, a refusal named.
    let (s, v) = api
        .call(
            Some(&ann),
            Method::POST,
            "/api/v1/conversations/resolve",
            Some(json!({"ids": []})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_ids"))
    );
    let (s, v) = api
        .call(
            Some(&ann),
            Method::POST,
            "/api/v1/conversations/resolve",
            Some(json!({"ids": [first, second, 424242]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["resolved"], json!([first, second]));
    assert_eq!(v["refused"][0]["id"], 424242);
    assert_eq!(v["refused"][0]["code"], "not_found");
    let (_, v) = api
        .call(
            Some(&ann),
            Method::POST,
            "/api/v1/conversations/resolve",
            Some(json!({"ids": [first]})),
        )
        .await;
    assert_eq!(v["refused"][0]["code"], "invalid_transition", "{v}");

    // Journaled: a kill -9 keeps the labels on the conversation.
    let dir = _dir;
    d.kill9();
    let d = TestDaemon::start(dir.path(), "");
    let api = Api::new(&d);
    let ann = login(&d, "ann", "ann-password-12").await;
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/conversations/{first}"),
            None,
        )
        .await;
    assert_eq!(v["labels"], json!([vip_id]));
    assert_eq!(v["status"], "resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_rates_only_their_own_resolved_conversation_and_the_report_shows_it() {
    let (dir, d) = start();
    let api = Api::new(&d);
    let ann = login(&d, "ann", "ann-password-12").await;
    let mine = visitor_writes(&d, &api, &ann, "rater").await;
    let theirs = visitor_writes(&d, &api, &ann, "other").await;
    // Ann holds "mine": the rating counts for her.
    api.call(
        Some(&ann),
        Method::POST,
        &format!("/api/v1/conversations/{mine}/assign"),
        Some(json!({})),
    )
    .await;

    let rate = |conversation: u64, visitor: &str, score: Value| json!({"visitor_id": visitor, "conversation_id": conversation, "score": score, "comment": " 很快，谢谢 "});
    let (s, v) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/rating",
            Some(rate(mine, "rater", json!(5))),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_resolved")),
        "{v}"
    );
    let (s, v) = api
        .call(
            None,
            Method::GET,
            "/api/v1/visitor/conversation?visitor_id=rater",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["conversation_id"].as_u64(), v["status"].as_str()),
        (Some(mine), Some("in_progress"))
    );
    assert_eq!(v["rating"], Value::Null);

    // The customer's widget hears of the resolve.
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=rater&after=999999")).await;
    api.call(
        Some(&ann),
        Method::POST,
        &format!("/api/v1/conversations/{mine}/resolve"),
        None,
    )
    .await;
    api.call(
        Some(&ann),
        Method::POST,
        &format!("/api/v1/conversations/{theirs}/resolve"),
        None,
    )
    .await;
    let (frame, _) = next_of_type(&mut ws, "resolved", 10).await;
    assert_eq!(frame["conversation_id"].as_u64(), Some(mine));

    // Another's conversation, an unknown visitor, bad scores, a forged user namespace.
    let (s, v) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/rating",
            Some(rate(theirs, "rater", json!(1))),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_your_conversation"))
    );
    let (s, _) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/rating",
            Some(rate(mine, "nobody", json!(1))),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for score in [json!(0), json!(6)] {
        let (s, v) = api
            .call(
                None,
                Method::POST,
                "/api/v1/visitor/rating",
                Some(rate(mine, "rater", score)),
            )
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_rating"))
        );
    }
    let (s, _) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/rating",
            Some(rate(mine, "rater", json!("five"))),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = api
        .call(None, Method::POST, "/api/v1/visitor/rating", Some(json!({"visitor_id": "rater", "conversation_id": mine, "score": 4, "comment": "x".repeat(1001)})))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_rating"))
    );
    let (s, v) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/rating",
            Some(rate(mine, "user:rater", json!(1))),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_visitor_id"))
    );

    let (s, v) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/rating",
            Some(rate(mine, "rater", json!(5))),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = api
        .call(
            None,
            Method::GET,
            "/api/v1/visitor/conversation?visitor_id=rater",
            None,
        )
        .await;
    assert_eq!(v["rating"], json!({"score": 5, "comment": "很快，谢谢"}));

    // The report: agents only; per day and per agent; CSV.
    let (s, _) = api
        .call(None, Method::GET, "/api/v1/reports/ratings", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = api
        .call(
            Some(&ann),
            Method::GET,
            "/api/v1/reports/ratings?days=0",
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_days"))
    );
    let (s, v) = api
        .call(
            Some(&ann),
            Method::GET,
            "/api/v1/reports/ratings?days=7&format=xml",
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_format"))
    );
    let (s, v) = api
        .call(
            Some(&ann),
            Method::GET,
            "/api/v1/reports/ratings?days=7",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["days"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        (
            v["days"][0]["count"].as_u64(),
            v["days"][0]["average"].as_f64()
        ),
        (Some(1), Some(5.0))
    );
    assert_eq!(v["agents"][0]["name"], "ann");
    assert_eq!(v["comments"][0]["comment"], "很快，谢谢");
    let csv = api
        .c
        .get(d.http("/api/v1/reports/ratings?days=7&format=csv"))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "group,key,name,count,average,score_1,score_2,score_3,score_4,score_5"
    );
    assert!(
        lines[1].starts_with("day,") && lines[1].ends_with(",1,5.00,0,0,0,0,1"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("agent,") && lines[2].contains(",ann,1,5.00,"),
        "{text}"
    );

    // Journaled: survives a kill -9.
    d.kill9();
    let d = TestDaemon::start(dir.path(), "");
    let api = Api::new(&d);
    let (_, v) = api
        .call(
            None,
            Method::GET,
            "/api/v1/visitor/conversation?visitor_id=rater",
            None,
        )
        .await;
    assert_eq!(v["rating"]["score"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_edit_contacts_and_customers_fill_the_form_and_signed_identities_cannot_be_forged() {
    let (_dir, d) = start();
    let api = Api::new(&d);
    let boss = login(&d, "boss", "boss-password-1").await;
    let ann = login(&d, "ann", "ann-password-12").await;
    let conversation = visitor_writes(&d, &api, &ann, "formfill").await;
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/conversations/{conversation}"),
            None,
        )
        .await;
    let contact = v["contact_id"].as_u64().unwrap();

    // The widget's form: before writing, no contact; bad input; then kept.
    let (s, _) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/profile",
            Some(json!({"visitor_id": "silent", "name": "X"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/profile",
            Some(json!({"visitor_id": "formfill", "email": "no-at-sign"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_profile"))
    );
    let (s, v) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/profile",
            Some(json!({"visitor_id": "formfill", "name": "Li Wei", "phone": "+86 138 0000 0000"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/contacts/{contact}"),
            None,
        )
        .await;
    assert_eq!(
        (v["name"].as_str(), v["phone"].as_str()),
        (Some("Li Wei"), Some("+86 138 0000 0000"))
    );
    let (_, v) = api
        .call(Some(&ann), Method::GET, "/api/v1/conversations", None)
        .await;
    assert_eq!(v["conversations"][0]["contact_name"], "Li Wei");

    // Agents edit: notes too; an empty field removes it; bad input; authorization.
    let (s, _) = api
        .call(
            None,
            Method::PUT,
            &format!("/api/v1/contacts/{contact}"),
            Some(json!({"name": "Z"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = api
        .call(
            Some(&ann),
            Method::PUT,
            &format!("/api/v1/contacts/{contact}"),
            Some(json!({"phone": "call me maybe"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_profile"))
    );
    let (s, _) = api
        .call(
            Some(&ann),
            Method::PUT,
            "/api/v1/contacts/424242",
            Some(json!({"name": "Z"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api
        .call(Some(&ann), Method::PUT, &format!("/api/v1/contacts/{contact}"), Some(json!({"email": "li@example.com", "phone": "", "notes": "Likes oolong.\nPays cash."})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "Li Wei");
    assert_eq!(v["phone"], "");
    assert_eq!(v["email"], "li@example.com");
    assert_eq!(v["notes"], "Likes oolong.\nPays cash.");

    // Search finds the customer by name, e-mail or phone, and names them beside their messages.
    for q in ["li wei", "LI@EXAMPLE", "li%"] {
        let (s, v) = api
            .call(
                Some(&ann),
                Method::GET,
                &format!("/api/v1/search?q={}", urlencode(q)),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let hits = v["contacts"].as_array().unwrap();
        if q == "li%" {
            assert!(hits.is_empty(), "% is a character, not a wildcard: {v}");
        } else {
            assert_eq!(hits.len(), 1, "{q}: {v}");
            assert_eq!(hits[0]["contact_id"].as_u64(), Some(contact));
            assert_eq!(hits[0]["conversation_id"].as_u64(), Some(conversation));
        }
    }
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            "/api/v1/search?q=green%20tea",
            None,
        )
        .await;
    assert_eq!(v["messages"][0]["contact_name"], "Li Wei", "{v}");

    // Signed identities: off until an admin makes the secret.
    let (s, _) = api
        .call(
            Some(&ann),
            Method::POST,
            "/api/v1/settings/identity-secret",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let signed = |secret: &str, id: &str, name: &str, email: &str| {
        format!(
            "user_id={id}&user_name={}&user_email={}&user_signature={}",
            urlencode(name),
            urlencode(email),
            kefud::signed_identity::sign(secret.as_bytes(), id, name, email)
        )
    };
    let url = d.ws(&format!(
        "/ws/visitor?{}",
        signed("guess", "42", "Wang Fang", "wf@example.com")
    ));
    let refused = tokio_tungstenite::connect_async(&url).await;
    assert!(refused.is_err(), "no secret yet: refused");
    let (s, v) = api
        .call(
            Some(&boss),
            Method::POST,
            "/api/v1/settings/identity-secret",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let secret = v["secret"].as_str().unwrap().to_string();
    let (_, v) = api
        .call(
            Some(&boss),
            Method::GET,
            "/api/v1/settings/identity-secret",
            None,
        )
        .await;
    assert_eq!(v["secret"], secret);

    // Forged (another key, or a changed name): refused with 403 before the upgrade.
    for query in [
        signed("not the secret", "42", "Wang Fang", "wf@example.com"),
        signed(&secret, "42", "Wang Fang", "wf@example.com").replace("Wang", "Evil"),
    ] {
        let r = api
            .c
            .get(d.http(&format!("/api/v1/visitor/conversation?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "bad_signature");
        assert!(
            tokio_tungstenite::connect_async(d.ws(&format!("/ws/visitor?{query}")))
                .await
                .is_err()
        );
    }
    // A plain visitor cannot take the signed user's identity.
    assert!(
        tokio_tungstenite::connect_async(d.ws("/ws/visitor?visitor_id=user:42"))
            .await
            .is_err()
    );

    // Signed: the identity is user:42 on every device; the name and e-mail come with it.
    let query = signed(&secret, "42", "Wang Fang", "wf@example.com");
    let mut ws = connect(&d.ws(&format!("/ws/visitor?{query}"))).await;
    let (welcome, _) = next_of_type(&mut ws, "welcome", 10).await;
    assert!(welcome.to_string().contains("user:42"), "{welcome}");
    send_for_ack(&mut ws, "s1", "where is my order?")
        .await
        .expect("acked");
    let mut body: Value = serde_json::from_str(&format!(
        "{{{}}}",
        query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                format!("\"{k}\":{}", json!(urldecode(v)))
            })
            .collect::<Vec<_>>()
            .join(",")
    ))
    .unwrap();
    body["name"] = json!("Someone Else");
    let (s, v) = api
        .call(None, Method::POST, "/api/v1/visitor/profile", Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let signed_contact = v["contact_id"].as_u64().unwrap();
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/contacts/{signed_contact}"),
            None,
        )
        .await;
    assert_eq!(
        (v["name"].as_str(), v["email"].as_str()),
        (Some("Wang Fang"), Some("wf@example.com")),
        "the shop's word wins: {v}"
    );
    let mut again = connect(&d.ws(&format!("/ws/visitor?{query}&after=0"))).await;
    let (m, _) = next_of_type(&mut again, "message", 10).await;
    assert_eq!(
        m["text"], "where is my order?",
        "a second device sees the same thread"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
