//! The reports' API on the real binary: messages per hour of the day and response times per
//! day, as JSON and as CSV downloads; who may read them and what input is refused.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn get(c: &Client, d: &TestDaemon, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = c.get(d.http(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn json_ok(c: &Client, d: &TestDaemon, token: &str, path: &str) -> Value {
    let r = get(c, d, Some(token), path).await;
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

/// A visitor writes `n` messages in one conversation.
async fn customer(d: &TestDaemon, id: &str, n: usize) {
    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id={id}"))).await;
    next_of_type(&mut ws, "welcome", 5).await;
    for i in 0..n {
        assert!(
            send_for_ack(&mut ws, &format!("{id}-{i}"), &format!("question {i}"))
                .await
                .is_some()
        );
    }
}

fn totals(hours: &Value) -> (u64, u64) {
    let hours = hours.as_array().unwrap();
    assert_eq!(hours.len(), 24, "{hours:?}");
    hours.iter().fold((0, 0), |(c, a), h| {
        (
            c + h["customer"].as_u64().unwrap(),
            a + h["agent"].as_u64().unwrap(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_and_response_time_reports_as_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    add_agent(dir.path(), "wang", "password-wang", false);
    let d = TestDaemon::start(dir.path(), "");
    let c = Client::new();
    let li = login(&d, "li", "password-li").await;
    let wang = login(&d, "wang", "password-wang").await;

    // Nobody without a token; any agent with one.
    for path in [
        "/api/v1/reports/hourly",
        "/api/v1/reports/hourly?format=csv",
        "/api/v1/reports/response-times?days=3",
        "/api/v1/reports/response-times?format=csv",
    ] {
        assert_eq!(get(&c, &d, None, path).await.status(), 401, "{path}");
        assert_eq!(get(&c, &d, Some("not-a-token"), path).await.status(), 401);
    }
    // Bad input, with its code.
    for (query, code) in [
        ("days=0", "bad_days"),
        ("days=367", "bad_days"),
        ("days=-1", "bad_query"),
        ("days=seven", "bad_query"),
        ("utc_offset=841", "bad_utc_offset"),
        ("utc_offset=-721", "bad_utc_offset"),
        ("utc_offset=8h", "bad_query"),
        ("format=xml", "bad_format"),
    ] {
        for report in ["hourly", "response-times"] {
            let r = get(
                &c,
                &d,
                Some(&li),
                &format!("/api/v1/reports/{report}?{query}"),
            )
            .await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{report}?{query}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], code, "{report}?{query}: {body}");
        }
    }

    // Nothing yet: 24 empty hours.
    let empty = json_ok(&c, &d, &wang, "/api/v1/reports/hourly?days=1").await;
    assert_eq!(totals(&empty["hours"]), (0, 0));

    let started = now_ms();
    customer(&d, "ann", 3).await;
    customer(&d, "bo", 2).await;
    let list = json_ok(&c, &d, &li, "/api/v1/conversations?status=all").await;
    let ann = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == "ann")
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    for text in ["Hello Ann", "Your order ships today"] {
        let r = c
            .post(d.http(&format!("/api/v1/conversations/{ann}/messages")))
            .bearer_auth(&li)
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let ended = now_ms();

    let utc = json_ok(&c, &d, &wang, "/api/v1/reports/hourly?days=1").await;
    assert_eq!(utc["days"], 1);
    assert_eq!(utc["utc_offset"], 0);
    assert_eq!(totals(&utc["hours"]), (5, 2), "{utc}");
    // The messages fall in the hour they were written (or the next, at an hour's turn).
    let hour = |at: i64, offset: i64| ((at + offset).rem_euclid(24 * HOUR_MS) / HOUR_MS) as usize;
    let busy: Vec<usize> = utc["hours"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["customer"].as_u64().unwrap() + h["agent"].as_u64().unwrap() > 0)
        .map(|h| h["hour"].as_u64().unwrap() as usize)
        .collect();
    assert!(
        busy.iter()
            .all(|h| [hour(started, 0), hour(ended, 0)].contains(h)),
        "{busy:?}"
    );
    // Eight hours east, the same messages are eight hours later in the day (over a week,
    // so none falls before the window's local midnight).
    let utc7 = json_ok(&c, &d, &li, "/api/v1/reports/hourly?days=7").await;
    let east = json_ok(&c, &d, &li, "/api/v1/reports/hourly?days=7&utc_offset=480").await;
    assert_eq!(east["utc_offset"], 480);
    for h in 0..24 {
        assert_eq!(east["hours"][(h + 8) % 24], {
            let mut v = utc7["hours"][h].clone();
            v["hour"] = json!((h + 8) % 24);
            v
        });
    }

    // The hourly CSV: a dated attachment, the header, 24 rows.
    let r = get(
        &c,
        &d,
        Some(&wang),
        "/api/v1/reports/hourly?days=1&format=csv",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let today = utc["since"].as_str().unwrap().to_string();
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"kefud-hourly-{today}.csv\"").as_str()
    );
    let body = r.text().await.unwrap();
    let lines: Vec<&str> = body.split("\r\n").collect();
    assert_eq!(lines[0], "hour,customer_messages,agent_messages");
    assert_eq!(
        lines.len(),
        26,
        "header, 24 hours, the final line end: {body:?}"
    );
    assert_eq!(lines[25], "");
    let mut sums = (0, 0);
    for (i, line) in lines[1..25].iter().enumerate() {
        let cells: Vec<u64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(cells[0], i as u64);
        assert_eq!(utc["hours"][i]["customer"], cells[1]);
        assert_eq!(utc["hours"][i]["agent"], cells[2]);
        sums = (sums.0 + cells[1], sums.1 + cells[2]);
    }
    assert_eq!(sums, (5, 2));

    // Response times: today, two conversations, one answered; as JSON and as CSV.
    let rt = json_ok(&c, &d, &li, "/api/v1/reports/response-times?days=1").await;
    let day = &rt["days"][0];
    assert_eq!(day["day"], today.as_str(), "{rt}");
    assert_eq!(day["conversations"], 2);
    assert_eq!(day["first_response"]["count"], 1);
    let r = get(
        &c,
        &d,
        Some(&li),
        "/api/v1/reports/response-times?days=1&format=csv",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"kefud-response-times-{today}.csv\"").as_str()
    );
    let body = r.text().await.unwrap();
    let lines: Vec<&str> = body.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "day,conversations,assigned,assignment_median_secs,assignment_p90_secs,\
         first_responses,first_response_median_secs,first_response_p90_secs,\
         resolved,resolution_median_secs,resolution_p90_secs"
    );
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(cells.len(), 11, "{body}");
    assert_eq!((cells[0], cells[1], cells[5]), (today.as_str(), "2", "1"));
    let median = day["first_response"]["median_secs"].as_f64().unwrap();
    assert_eq!(cells[6].parse::<f64>().unwrap(), median);
    // Not resolved: empty cells, not zeros.
    assert_eq!((cells[8], cells[9], cells[10]), ("", "", ""));
    assert_eq!(lines.len(), 3);
}
