//! The installable console on the real binary: the manifest named after the shop, the service
//! worker served from the root with its build's shell list, and the icons with their types.

mod common;

use common::*;
use reqwest::Client;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_worker_and_icons() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    let c = Client::new();

    // Before the shop is named, the app is "kefud".
    let r = c.get(d.http("/manifest.webmanifest")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/manifest+json");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "kefud");
    let r = c
        .post(d.http("/api/v1/setup"))
        .json(
            &json!({"shop_name": "茶与咖啡 Tea & Coffee", "username": "li",
                      "display_name": "Li", "password": "a-long-password"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let m: Value = c
        .get(d.http("/manifest.webmanifest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["name"], "茶与咖啡 Tea & Coffee · kefud");
    assert_eq!(m["short_name"], "茶与咖啡 Tea & C");
    assert_eq!(
        (&m["start_url"], &m["scope"], &m["display"]),
        (&json!("/"), &json!("/"), &json!("standalone"))
    );

    // Every icon it names is served with its type; PNGs at their sizes.
    for icon in m["icons"].as_array().unwrap() {
        let src = icon["src"].as_str().unwrap();
        let r = c.get(d.http(src)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{src}");
        assert_eq!(
            r.headers()["content-type"],
            icon["type"].as_str().unwrap(),
            "{src}"
        );
        let body = r.bytes().await.unwrap();
        if let Some((w, h)) = icon["sizes"].as_str().unwrap().split_once('x') {
            assert_eq!(&body[12..16], b"IHDR");
            assert_eq!(
                u32::from_be_bytes(body[16..20].try_into().unwrap()).to_string(),
                w
            );
            assert_eq!(
                u32::from_be_bytes(body[20..24].try_into().unwrap()).to_string(),
                h
            );
        }
    }
    let r = c.get(d.http("/favicon.ico")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");

    // The worker: from the root, never cached by HTTP, with this build's shell and only it.
    let r = c.get(d.http("/sw.js")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.headers()["service-worker-allowed"], "/");
    let sw = r.text().await.unwrap();
    let first = sw.lines().next().unwrap();
    let build: Value = serde_json::from_str(
        first
            .strip_prefix("const BUILD = ")
            .and_then(|s| s.strip_suffix(';'))
            .unwrap(),
    )
    .unwrap();
    assert!(build["version"]
        .as_str()
        .unwrap()
        .starts_with(env!("CARGO_PKG_VERSION")));
    let shell: Vec<&str> = build["shell"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(shell.contains(&"/") && shell.contains(&"/web/console/app.js"));
    for url in &shell {
        assert!(
            *url == "/" || url.starts_with("/web/console/") || url.starts_with("/web/shared/"),
            "{url}"
        );
        let r = c.get(d.http(url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url} in the shell is served");
    }
    assert!(sw.contains("addEventListener('fetch'"));
    // The same worker byte for byte while the build is the same.
    assert_eq!(
        c.get(d.http("/sw.js"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        sw
    );
}
