//! HTTPS on the real binary: a device that trusts only the CA downloaded from the box reaches
//! it as `kefu.local` (resolved to 127.0.0.1 here), a wrong name is refused, a restart keeps
//! the CA, the visitor WebSocket works over wss, `tls.redirect_http` sends the console (and
//! nothing else) to HTTPS, and HTTPS that is off, or cannot start, leaves HTTP serving.

mod common;

use std::sync::Arc;

use common::*;
use futures_util::StreamExt;
use reqwest::{Client, StatusCode};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// `[tls]` on loopback port 0, with `more` keys.
fn tls_config(more: &str) -> String {
    format!("[tls]\nlisten = \"127.0.0.1:0\"\n{more}\n")
}

async fn get(d: &TestDaemon, path: &str) -> reqwest::Response {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(d.http(path))
        .send()
        .await
        .unwrap()
}

async fn https_port(d: &TestDaemon) -> u16 {
    let health: Value = get(d, "/healthz").await.json().await.unwrap();
    health["https_port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no https_port in {health}")) as u16
}

/// A TLS client that trusts `ca` (DER) and nothing else, as a phone that installed it.
fn client_trusting(ca: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.to_vec())).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects to 127.0.0.1:`port` as `name` (what a device resolving `name` to the box does).
async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    port: u16,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    connector
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
}

/// `GET path` over TLS as `name`: the status line's code, the headers and the body.
async fn https_get(
    connector: &tokio_rustls::TlsConnector,
    port: u16,
    name: &str,
    path: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut tls = tls_connect(connector, port, name).await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {name}:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    // A server closing without close_notify is an error for rustls; what was read counts.
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, head.to_string(), body.to_string()))
}

async fn download_ca(d: &TestDaemon) -> Vec<u8> {
    let r = get(d, "/ca.crt").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "application/x-x509-ca-cert",
        "the type devices install a CA from"
    );
    r.bytes().await.unwrap().to_vec()
}

fn sha256_colons(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_trusting_the_box_ca_reaches_it_as_kefu_local_and_a_restart_keeps_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), &tls_config(""));
    let port = https_port(&d).await;
    let ca = download_ca(&d).await;
    let trusting = client_trusting(&ca);

    let (code, _, body) = https_get(&trusting, port, "kefu.local", "/healthz")
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ok"
    );
    for name in ["localhost", "127.0.0.1"] {
        let (code, _, _) = https_get(&trusting, port, name, "/healthz").await.unwrap();
        assert_eq!(code, 200, "{name}");
    }
    // The console itself over HTTPS, the same router as HTTP.
    let (code, head, body) = https_get(&trusting, port, "kefu.local", "/").await.unwrap();
    assert_eq!(code, 200);
    assert!(head
        .to_ascii_lowercase()
        .contains("content-security-policy"));
    assert!(body.len() > 100);

    // A name the certificate does not carry is refused by the client...
    let err = https_get(&trusting, port, "shop.example", "/healthz")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // ...and so is the box by a device that trusts another CA.
    let other = rcgen::CertificateParams::default()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let err = https_get(
        &client_trusting(other.der()),
        port,
        "kefu.local",
        "/healthz",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // What the console shows: the fingerprint of what was downloaded, the PEM form the same.
    let info: Value = get(&d, "/api/v1/tls").await.json().await.unwrap();
    assert_eq!(info["status"], "serving", "{info}");
    assert_eq!(info["https_port"], port);
    assert_eq!(info["ca"]["sha256"], sha256_colons(&ca));
    assert!(info["ca"]["name"].as_str().unwrap().starts_with("kefud "));
    let names: Vec<&str> = info["certificate"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for name in ["kefu.local", "localhost", "127.0.0.1", "::1"] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert!(info["urls"]
        .as_array()
        .unwrap()
        .contains(&Value::from(format!("https://kefu.local:{port}/"))));
    let pem = get(&d, "/ca.pem").await.text().await.unwrap();
    let from_pem = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(from_pem.as_ref(), &ca[..]);
    // The keys are the daemon's alone.
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(dir.path().join("data/tls").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let served_cert = served_certificate(&trusting, port).await;

    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
    let d = TestDaemon::start(dir.path(), &tls_config(""));
    let port = https_port(&d).await;
    assert_eq!(download_ca(&d).await, ca, "the same CA after a restart");
    let (code, _, _) = https_get(&trusting, port, "kefu.local", "/healthz")
        .await
        .unwrap();
    assert_eq!(
        code, 200,
        "a device that trusted the CA still trusts the box"
    );
    assert_eq!(
        served_certificate(&trusting, port).await,
        served_cert,
        "nothing was due: the same server certificate"
    );
    assert!(!d.log().contains("made a new HTTPS certificate"));
}

/// The certificate the box presents.
async fn served_certificate(connector: &tokio_rustls::TlsConnector, port: u16) -> Vec<u8> {
    let tls = tls_connect(connector, port, "kefu.local").await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visitor_websocket_works_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), &tls_config(""));
    let port = https_port(&d).await;
    let trusting = client_trusting(&download_ca(&d).await);
    let tls = tls_connect(&trusting, port, "kefu.local").await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("wss://kefu.local:{port}/ws/visitor?visitor_id=v-wss-1"),
        tls,
    )
    .await
    .unwrap();
    let welcome = loop {
        match ws.next().await.unwrap().unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                break serde_json::from_str::<Value>(t.as_str()).unwrap()
            }
            _ => continue,
        }
    };
    assert_eq!(welcome["type"], "welcome");
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        serde_json::json!({"type": "message", "client_id": "c1", "text": "hello over wss"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let ack = loop {
        let tokio_tungstenite::tungstenite::Message::Text(t) = ws.next().await.unwrap().unwrap()
        else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        if v["type"] == "ack" {
            break v;
        }
    };
    assert_eq!(ack["client_id"], "c1");
    // The same message is in the thread read over plain HTTP.
    let thread = history(&d, "v-wss-1").await;
    assert!(thread.iter().any(|m| m["text"] == "hello over wss"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_http_sends_the_console_to_https_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), &tls_config(""));
    // Off by default: the console answers over HTTP.
    assert_eq!(get(&d, "/").await.status(), StatusCode::OK);
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");

    let d = TestDaemon::start(dir.path(), &tls_config("redirect_http = true"));
    let port = https_port(&d).await;
    for path in ["/", "/web/console/app.js"] {
        let r = get(&d, path).await;
        assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT, "{path}");
        assert_eq!(
            r.headers()["location"],
            format!("https://127.0.0.1:{port}{path}").as_str()
        );
    }
    // What customers, shop sites and machines use keeps answering over HTTP.
    for path in [
        "/healthz",
        "/chat",
        "/widget.js",
        "/web/chat/chat.js",
        "/web/shared/i18n.js",
        "/ca.crt",
        "/trust",
        "/api/v1/tls",
        "/api/v1/widget/info",
    ] {
        assert_eq!(get(&d, path).await.status(), StatusCode::OK, "{path}");
    }
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=v-http-1")).await;
    assert_eq!(next_json(&mut ws, 5).await["type"], "welcome");
    // Over HTTPS the console is served, not redirected again.
    let trusting = client_trusting(&download_ca(&d).await);
    let (code, _, _) = https_get(&trusting, port, "kefu.local", "/").await.unwrap();
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_off_or_unable_to_start_leaves_http_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        &tls_config("enabled = false\nredirect_http = true"),
    );
    let health: Value = get(&d, "/healthz").await.json().await.unwrap();
    assert!(health.get("https_port").is_none(), "{health}");
    let r = get(&d, "/ca.crt").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("tls.enabled"),
        "{v}"
    );
    let info: Value = get(&d, "/api/v1/tls").await.json().await.unwrap();
    assert_eq!(info["status"], "off");
    // No HTTPS, no redirect.
    assert_eq!(get(&d, "/").await.status(), StatusCode::OK);
    assert!(!dir.path().join("data/tls").exists());
    drop(d);

    // The HTTPS port is taken: HTTP serves and says why HTTPS does not.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(
        dir.path(),
        &format!("[tls]\nlisten = \"{}\"\n", taken.local_addr().unwrap()),
    );
    let info: Value = get(&d, "/api/v1/tls").await.json().await.unwrap();
    assert_eq!(info["status"], "failed", "{info}");
    assert!(
        info["error"].as_str().unwrap().contains("cannot listen"),
        "{info}"
    );
    assert_eq!(get(&d, "/healthz").await.status(), StatusCode::OK);
    drop(d);

    // A CA damaged on disk is never replaced behind the devices' backs.
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), &tls_config(""));
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
    let ca_path = dir.path().join("data/tls/ca.crt");
    std::fs::write(&ca_path, "not a certificate").unwrap();
    let d = TestDaemon::start(dir.path(), &tls_config(""));
    let info: Value = get(&d, "/api/v1/tls").await.json().await.unwrap();
    assert_eq!(info["status"], "failed", "{info}");
    assert!(info["error"].as_str().unwrap().contains("ca.crt"), "{info}");
    assert_eq!(
        std::fs::read_to_string(&ca_path).unwrap(),
        "not a certificate"
    );
    assert_eq!(get(&d, "/healthz").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_keeps_the_ca_the_devices_trust() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let d = TestDaemon::start(&origin, &tls_config(""));
    let ca = download_ca(&d).await;
    let backup = tmp.path().join("backup");
    let (ok, out) = kefud_cli(&origin, &["backup", backup.to_str().unwrap()], "");
    assert!(ok, "{out}");
    drop(d);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&backup.join("tls/ca.key")),
        0o600,
        "the key stays private in the backup"
    );

    let restored = tmp.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    write_config(&restored, &tls_config(""));
    let (ok, out) = kefud_cli(&restored, &["restore", backup.to_str().unwrap()], "");
    assert!(ok, "{out}");
    assert_eq!(mode(&restored.join("data/tls/ca.key")), 0o600);
    assert_eq!(mode(&restored.join("data/tls/server.key")), 0o600);
    let d = TestDaemon::start(&restored, &tls_config(""));
    assert_eq!(
        download_ca(&d).await,
        ca,
        "the restored box has the same CA"
    );
    let port = https_port(&d).await;
    let (code, _, _) = https_get(&client_trusting(&ca), port, "kefu.local", "/healthz")
        .await
        .unwrap();
    assert_eq!(code, 200);
}
