//! Labels on the real binary: admins define them, agents put them on conversations (journaled:
//! a kill -9 keeps them), the inbox filters by label and by agent, a deleted label disappears
//! and its id is never given again, and several conversations are resolved at once.

mod common;

use common::day_one::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

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
