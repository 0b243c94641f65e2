//! `GET /api/v1/qr.svg` on the real binary: agents only, bad text and sizes refused with a
//! code, and an SVG that carries the text it encodes (decoded back in `src/qr.rs`' unit
//! tests and in the browser test).

mod common;

use common::*;
use serde_json::Value;

async fn get(d: &TestDaemon, token: Option<&str>, query: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(d.http(&format!("/api/v1/qr.svg{query}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn agents_get_an_svg_of_the_text_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    add_agent(dir.path(), "li", "password1", false);
    let token = login(&d, "li", "password1").await;
    let chat = "http://kefu.local:8080/chat";

    // No token, or a wrong one: 401, nothing drawn.
    assert_eq!(get(&d, None, "?text=x").await.status(), 401);
    assert_eq!(get(&d, Some("nope"), "?text=x").await.status(), 401);

    let resp = get(
        &d,
        Some(&token),
        &format!("?text={}&size=320", urlencode(chat)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("image/svg+xml"));
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("private"));
    let svg = resp.text().await.unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    assert!(svg.contains(&format!("<title>{chat}</title>")), "{svg}");
    assert!(svg.ends_with("</svg>"));
    let width: u32 = svg
        .split(" width=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(width >= 320, "at least the size asked for: {width}");

    // Without a size: the default.
    assert_eq!(get(&d, Some(&token), "?text=hello").await.status(), 200);

    for (query, code) in [
        ("", "bad_qr_text"),
        ("?text=", "bad_qr_text"),
        ("?text=%20%20", "bad_qr_text"),
        ("?text=hello&size=abc", "bad_qr_size"),
        ("?text=hello&size=-5", "bad_qr_size"),
        ("?text=hello&size=10", "bad_qr_size"),
        ("?text=hello&size=100000", "bad_qr_size"),
    ] {
        let (status, got) = error_code(get(&d, Some(&token), query).await).await;
        assert_eq!((status, got.as_str()), (400, code), "{query}");
    }
    let long = "x".repeat(1025);
    let (status, got) = error_code(get(&d, Some(&token), &format!("?text={long}")).await).await;
    assert_eq!((status, got.as_str()), (400, "bad_qr_text"));
    assert_eq!(
        get(&d, Some(&token), &format!("?text={}", "x".repeat(1024)))
            .await
            .status(),
        200,
        "the limit itself"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
