//! HTTPS's public face: the box's CA certificate to download (`/ca.crt` in DER, the form
//! Windows, Android and iOS install; `/ca.pem`), what `/api/v1/tls` says of the certificates
//! (for the console's Admin, HTTPS page and the printable `/trust` page), and the redirect of
//! the console from HTTP to HTTPS (`tls.redirect_http`).
//!
//! Everything here is public on purpose: a device must be able to fetch the CA, over plain
//! HTTP, before it trusts anything; a CA certificate and its fingerprint are not secrets.
//! The redirect covers the console alone (`/` and its modules): the chat page, the widget,
//! the APIs, WebSockets, `/healthz`, the CA and `/trust` stay on HTTP, so a widget embedded in
//! an http shop site keeps working.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::listener::Https;
use super::{ApiError, AppState};
use crate::tls::{Status, View};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ca.crt", get(ca_der))
        .route("/ca.pem", get(ca_pem))
        .route("/trust", get(super::web::trust_page))
        .route("/api/v1/tls", get(info))
}

fn view(app: &AppState) -> Result<View, ApiError> {
    match app.tls.status() {
        Status::Ready(view) => Ok(view),
        Status::Off => Err(ApiError::NotFound(
            "HTTPS is off on this box (tls.enabled = false)".into(),
        )),
        Status::Failed(why) => Err(ApiError::NotFound(format!("HTTPS is not available: {why}"))),
    }
}

fn download(body: Vec<u8>, content_type: &'static str, filename: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(filename),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn ca_der(State(app): State<AppState>) -> Result<Response, ApiError> {
    let v = view(&app)?;
    Ok(download(
        v.ca_der.to_vec(),
        "application/x-x509-ca-cert",
        "attachment; filename=\"kefud-ca.crt\"",
    ))
}

async fn ca_pem(State(app): State<AppState>) -> Result<Response, ApiError> {
    let v = view(&app)?;
    Ok(download(
        crate::tls::files::cert_pem(&v.ca_der).into_bytes(),
        "application/x-pem-file",
        "attachment; filename=\"kefud-ca.pem\"",
    ))
}

async fn info(State(app): State<AppState>) -> Json<serde_json::Value> {
    let http_port = app.tls.http_addr().map(|a| a.port());
    let https_port = app.tls.https_addr().map(|a| a.port());
    let body = match app.tls.status() {
        Status::Off => serde_json::json!({"status": "off", "http_port": http_port}),
        Status::Failed(why) => {
            serde_json::json!({"status": "failed", "error": why, "http_port": http_port})
        }
        Status::Ready(v) => serde_json::json!({
            "status": if https_port.is_some() { "serving" } else { "failed" },
            "error": https_port.is_none().then_some("the HTTPS port could not be opened (see the log)"),
            "http_port": http_port,
            "https_port": https_port,
            "urls": https_port.map(|p| urls(&v.names, p)).unwrap_or_default(),
            "ca": {
                "name": v.ca_name,
                "sha256": fingerprint(&v.ca_sha256),
                "not_after": v.ca_not_after * 1000,
                "download": "/ca.crt",
                "download_pem": "/ca.pem",
            },
            "certificate": {"names": v.names, "not_after": v.not_after * 1000},
        }),
    };
    Json(body)
}

/// `AB:CD:...`, as certificate dialogs show a SHA-256 fingerprint.
fn fingerprint(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap_or("").to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// The addresses to open the console at over HTTPS: every name of the certificate but the
/// box's own loopback ones.
fn urls(names: &[String], port: u16) -> Vec<String> {
    let port = if port == 443 {
        String::new()
    } else {
        format!(":{port}")
    };
    names
        .iter()
        .filter_map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_loopback() => None,
            Ok(std::net::IpAddr::V6(v6)) => Some(format!("https://[{v6}]{port}/")),
            Ok(ip) => Some(format!("https://{ip}{port}/")),
            Err(_) if n == "localhost" => None,
            Err(_) => Some(format!("https://{n}{port}/")),
        })
        .collect()
}

/// With `tls.redirect_http`, a plain-HTTP request for the console goes to the same place over
/// HTTPS.
pub async fn redirect_console(
    State(app): State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if req.extensions().get::<Https>().is_none() && app.cfg().tls.redirect_http {
        if let Some(port) = app.tls.https_addr().map(|a| a.port()) {
            let target = redirect_target(
                req.method(),
                req.uri().path_and_query().map_or("/", |p| p.as_str()),
                req.headers(),
                port,
            );
            if let Some(location) = target.and_then(|t| HeaderValue::from_str(&t).ok()) {
                return (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, location)],
                )
                    .into_response();
            }
        }
    }
    next.run(req).await
}

/// Where a plain-HTTP request for the console is sent: the same host and path on the HTTPS
/// port. `None` for anything but a GET or HEAD of the console (`/`, `/web/console/...`), and
/// for a Host header that is not a plain host name or address (no redirect anywhere else).
fn redirect_target(
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    https_port: u16,
) -> Option<String> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let path = path_and_query.split('?').next().unwrap_or("");
    if path != "/" && !path.starts_with("/web/console/") {
        return None;
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = if let Some(rest) = host.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        format!("[{v6}]")
    } else {
        let name = host.split(':').next()?;
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        plain.then(|| name.to_string())?
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    Some(format!("https://{name}{port}{path_and_query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        m
    }

    #[test]
    fn the_console_is_sent_to_the_same_host_over_https() {
        let get = Method::GET;
        assert_eq!(
            redirect_target(&get, "/", &host("kefu.local:8080"), 8443).as_deref(),
            Some("https://kefu.local:8443/")
        );
        assert_eq!(
            redirect_target(&get, "/web/console/app.js?v=2", &host("192.168.1.5"), 443).as_deref(),
            Some("https://192.168.1.5/web/console/app.js?v=2")
        );
        assert_eq!(
            redirect_target(&Method::HEAD, "/", &host("[fd00::5]:8080"), 8443).as_deref(),
            Some("https://[fd00::5]:8443/")
        );
    }

    #[test]
    fn what_customers_and_machines_use_stays_on_http() {
        let h = host("kefu.local:8080");
        for path in [
            "/chat",
            "/widget.js",
            "/web/chat/chat.js",
            "/web/shared/i18n.js",
            "/healthz",
            "/api/v1/conversations",
            "/ws/visitor",
            "/ca.crt",
            "/trust",
        ] {
            assert_eq!(
                redirect_target(&Method::GET, path, &h, 8443),
                None,
                "{path}"
            );
        }
        assert_eq!(redirect_target(&Method::POST, "/", &h, 8443), None);
    }

    #[test]
    fn a_strange_host_header_is_never_redirected_to() {
        for bad in ["evil.example/x", "a@b", "[nope]:80", ""] {
            assert_eq!(
                redirect_target(&Method::GET, "/", &host(bad), 8443),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            redirect_target(&Method::GET, "/", &HeaderMap::new(), 8443),
            None
        );
    }

    #[test]
    fn urls_and_fingerprints_as_people_read_them() {
        let names = [
            "kefu.local",
            "localhost",
            "127.0.0.1",
            "192.168.1.5",
            "::1",
            "fd00::5",
        ]
        .map(String::from);
        assert_eq!(
            urls(&names, 8443),
            [
                "https://kefu.local:8443/",
                "https://192.168.1.5:8443/",
                "https://[fd00::5]:8443/"
            ]
        );
        assert_eq!(fingerprint("0aff10"), "0A:FF:10");
    }
}
