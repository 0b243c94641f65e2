//! Ratings on the real binary: a customer rates only their own resolved conversation (the
//! widget hears of the resolve), bad scores and comments are refused, the report per day and
//! per agent and its CSV, and a kill -9 keeps the rating.

mod common;

use common::day_one::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

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
