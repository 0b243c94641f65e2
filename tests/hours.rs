//! Business hours on the real binary: who may read and change them, bad input refused with a
//! code, a round trip that survives a restart, the widget's `open` flag, and the away message
//! a visitor gets (once) when they write while the shop is closed — and not while it is open.
//! kefud runs with `TZ=UTC`, so "today" on the shop's clock is the test's UTC date.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const AWAY: &str = "We are closed today; leave a message and we answer tomorrow.";

async fn call(
    d: &TestDaemon,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, d.http(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The UTC date `offset` days from today, as YYYY-MM-DD.
fn utc_date(offset: i64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let z = secs.div_euclid(86_400) + offset + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Open all day every day; closed on `holidays`.
fn all_day(holidays: &[String]) -> Value {
    let day = json!([{"start": "00:00", "end": "24:00"}]);
    json!({
        "enabled": true,
        "weekly": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day},
        "holidays": holidays,
        "away_message": AWAY,
    })
}

/// Today and the days either side: closed whatever the hour (no race with midnight).
fn around_today() -> Vec<String> {
    (-1..=1).map(utc_date).collect()
}

/// Sends `text` as `visitor` and returns the bot's messages in the visitor's thread after it.
async fn write(d: &TestDaemon, visitor: &str, client_id: &str, text: &str) -> Vec<String> {
    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id={visitor}"))).await;
    assert_eq!(next_json(&mut ws, 5).await["type"], "welcome");
    let id = send_for_ack(&mut ws, client_id, text).await.expect("acked");
    history(d, visitor)
        .await
        .into_iter()
        .filter(|m| m["type"] == "message" && m["sender"] == "bot")
        .filter(|m| m["message_id"].as_u64().unwrap() > id)
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

fn start(dir: &std::path::Path) -> TestDaemon {
    TestDaemon::try_start_with_env(dir, "", &[("TZ", "UTC")])
        .unwrap_or_else(|log| panic!("kefud did not start:\n{log}"))
}

#[tokio::test]
async fn only_admins_change_hours_and_bad_hours_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    add_agent(dir.path(), "boss", "password1", true);
    add_agent(dir.path(), "li", "password2", false);
    let admin = login(&d, "boss", "password1").await;
    let agent = login(&d, "li", "password2").await;

    assert_eq!(
        call(&d, None, Method::GET, "/api/v1/hours", None).await.0,
        401
    );
    let body = all_day(&[]);
    assert_eq!(
        call(&d, None, Method::PUT, "/api/v1/hours", Some(body.clone()))
            .await
            .0,
        401
    );
    let (status, v) = call(
        &d,
        Some(&agent),
        Method::PUT,
        "/api/v1/hours",
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );

    // Off by default: the box behaves as it did before hours existed.
    let (status, v) = call(&d, Some(&agent), Method::GET, "/api/v1/hours", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["enabled"], false);
    let (_, info) = call(&d, None, Method::GET, "/api/v1/widget/info", None).await;
    assert_eq!(info["open"], true);

    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = all_day(&[]);
        f(&mut b);
        b
    };
    for (bad, code) in [
        (
            with(&|b| b["weekly"]["mon"] = json!([{"start": "9:00", "end": "18:00"}])),
            "bad_hours_time",
        ),
        (
            with(&|b| b["weekly"]["tue"] = json!([{"start": "18:00", "end": "09:00"}])),
            "bad_hours_interval",
        ),
        (
            with(&|b| {
                b["weekly"]["wed"] =
                    json!([{"start": "09:00", "end": "13:00"}, {"start": "12:00", "end": "18:00"}])
            }),
            "bad_hours_interval",
        ),
        (
            with(&|b| {
                b["weekly"]["thu"] = json!(vec![json!({"start": "01:00", "end": "02:00"}); 5])
            }),
            "too_many_intervals",
        ),
        (
            with(&|b| b["holidays"] = json!(["2026-02-30"])),
            "bad_holiday",
        ),
        (
            with(&|b| {
                b["holidays"] = json!((0..367)
                    .map(|i| format!("{}-01-01", 2030 + i))
                    .collect::<Vec<_>>())
            }),
            "too_many_holidays",
        ),
        (with(&|b| b["away_message"] = json!("")), "bad_away_message"),
        (
            with(&|b| b["away_message"] = json!("x".repeat(4001))),
            "bad_away_message",
        ),
    ] {
        let (status, v) = call(
            &d,
            Some(&admin),
            Method::PUT,
            "/api/v1/hours",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some(code)),
            "{bad}: {v}"
        );
    }
    // An unknown field or a day that does not exist: the body is refused too.
    let (status, _) = call(
        &d,
        Some(&admin),
        Method::PUT,
        "/api/v1/hours",
        Some(with(&|b| b["weekly"]["xyz"] = json!([]))),
    )
    .await;
    assert_eq!(status, 400);
    let (_, v) = call(&d, Some(&agent), Method::GET, "/api/v1/hours", None).await;
    assert_eq!(v["enabled"], false, "nothing refused was kept");

    // Round trip: what is stored is what was sent, normalised (sorted, deduplicated).
    let mut good = all_day(&[
        "2031-12-25".into(),
        "2031-01-01".into(),
        "2031-12-25".into(),
    ]);
    good["weekly"]["sat"] =
        json!([{"start": "13:00", "end": "17:00"}, {"start": "09:00", "end": "12:00"}]);
    good["weekly"]["sun"] = json!([]);
    let (status, saved) = call(&d, Some(&admin), Method::PUT, "/api/v1/hours", Some(good)).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["holidays"], json!(["2031-01-01", "2031-12-25"]));
    assert_eq!(saved["weekly"]["sat"][0]["start"], "09:00");
    let (_, read) = call(&d, Some(&agent), Method::GET, "/api/v1/hours", None).await;
    assert_eq!(read, saved, "any agent reads them");

    // They survive a restart.
    d.terminate();
    let d = start(dir.path());
    let agent = login(&d, "li", "password2").await;
    let (_, read) = call(&d, Some(&agent), Method::GET, "/api/v1/hours", None).await;
    assert_eq!(read, saved);
}

#[tokio::test]
async fn outside_hours_a_visitor_gets_the_away_message_once_and_not_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    add_agent(dir.path(), "boss", "password1", true);
    let admin = login(&d, "boss", "password1").await;

    // Closed: today (on the box's clock, UTC here) is a holiday.
    let (status, v) = call(
        &d,
        Some(&admin),
        Method::PUT,
        "/api/v1/hours",
        Some(all_day(&around_today())),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, info) = call(&d, None, Method::GET, "/api/v1/widget/info", None).await;
    assert_eq!(
        (info["open"].as_bool(), info["away_message"].as_str()),
        (Some(false), Some(AWAY))
    );

    assert_eq!(write(&d, "night-owl", "a1", "hello, anyone?").await, [AWAY]);
    assert!(
        write(&d, "night-owl", "a2", "still there?")
            .await
            .is_empty(),
        "once per closed period, not per message"
    );
    assert_eq!(
        write(&d, "early-bird", "b1", "hi").await,
        [AWAY],
        "per conversation"
    );

    // The dispatcher reads the hours back at start, and what it sent from the store.
    d.terminate();
    let d = start(dir.path());
    let admin = login(&d, "boss", "password1").await;
    assert!(write(&d, "night-owl", "a3", "hello again").await.is_empty());
    assert_eq!(write(&d, "third", "c1", "hi").await, [AWAY]);

    // Open: the holiday removed. No away message, and the widget says open.
    let (status, _) = call(
        &d,
        Some(&admin),
        Method::PUT,
        "/api/v1/hours",
        Some(all_day(&[])),
    )
    .await;
    assert_eq!(status, 200);
    let (_, info) = call(&d, None, Method::GET, "/api/v1/widget/info", None).await;
    assert_eq!(
        (info["open"].as_bool(), &info["away_message"]),
        (Some(true), &Value::Null)
    );
    assert!(write(&d, "day-visitor", "d1", "hi").await.is_empty());

    // Hours switched off: open, as before hours existed.
    let mut off = all_day(&around_today());
    off["enabled"] = json!(false);
    call(&d, Some(&admin), Method::PUT, "/api/v1/hours", Some(off)).await;
    assert!(write(&d, "another", "e1", "hi").await.is_empty());
}
