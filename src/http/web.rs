//! The console (`/`), the customer chat page (`/chat`), the embeddable widget (`/widget.js`),
//! the page on trusting the box's CA (`/trust`) and their modules (`/web/...`): the files
//! under `web/`, embedded at build time (build.rs) and served gzip-compressed to clients that
//! accept it.
//!
//! Every HTML page carries a Content-Security-Policy that allows only this origin's scripts,
//! styles and connections (no inline script); only `/chat` may be framed (by `widget.js` on
//! the shop's site). For development, `KEFUD_WEB_DIR=path/to/web` serves the files from disk
//! on each request instead, so a page can be edited without rebuilding (files made by build.rs,
//! the PNG icons, still come from the binary).
//!
//! The installable console (`pwa.rs`) takes from here the shell its service worker caches
//! ([`shell`]) and a version that changes whenever any of those files does ([`version`]).

use axum::extract::Path as UrlPath;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

/// `(path under web/, raw, gzip)`, sorted by path.
static ASSETS: &[(&str, &[u8], &[u8])] = include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

const CSP_BASE: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { page("console/index.html", &h, false) }),
        )
        .route(
            "/chat",
            get(|h: HeaderMap| async move { page("chat/index.html", &h, true) }),
        )
        .route(
            "/widget.js",
            get(|h: HeaderMap| async move { file("widget.js", &h) }),
        )
        .route(
            "/web/{*path}",
            get(|UrlPath(path): UrlPath<String>, h: HeaderMap| async move {
                // Pages only at their own routes, which carry the CSP and framing rules.
                if path.ends_with(".html") {
                    return StatusCode::NOT_FOUND.into_response();
                }
                file(&path, &h)
            }),
        )
}

/// `/trust`: how to trust the box's CA on each kind of device (routed in `tls_api`).
pub(super) async fn trust_page(h: HeaderMap) -> Response {
    page("trust/index.html", &h, false)
}

fn page(path: &str, headers: &HeaderMap, frameable: bool) -> Response {
    let mut response = file(path, headers);
    let csp = format!(
        "{CSP_BASE}; frame-ancestors {}",
        if frameable { "*" } else { "'none'" }
    );
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).expect("invariant: the policy is ASCII"),
    );
    if !frameable {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

fn file(path: &str, headers: &HeaderMap) -> Response {
    if path.split('/').any(|part| part == ".." || part.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let on_disk = std::env::var_os("KEFUD_WEB_DIR")
        .and_then(|dir| std::fs::read(std::path::Path::new(&dir).join(path)).ok());
    let mut response = match on_disk {
        Some(raw) => raw.into_response(),
        None => {
            let Ok(i) = ASSETS.binary_search_by(|(p, _, _)| (*p).cmp(path)) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let (_, raw, gz) = ASSETS[i];
            if accepts_gzip(headers) {
                let mut r = gz.into_response();
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            } else {
                raw.into_response()
            }
        }
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // Revalidate every time: an upgraded kefud must not run an old console against a new API.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A file's bytes as served: from `KEFUD_WEB_DIR` when set and the file is there, else embedded.
pub(super) fn asset(path: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    if let Some(raw) = std::env::var_os("KEFUD_WEB_DIR")
        .and_then(|dir| std::fs::read(std::path::Path::new(&dir).join(path)).ok())
    {
        return Some(raw.into());
    }
    let i = ASSETS.binary_search_by(|(p, _, _)| (*p).cmp(path)).ok()?;
    Some(ASSETS[i].1.into())
}

/// The console's shell: the URLs the service worker keeps for a fast, offline start. The
/// page itself, and every file of `web/console/` and `web/shared/` but pages and the worker
/// (the chat page's own files and nothing that holds a customer's data).
pub(super) fn shell() -> Vec<String> {
    std::iter::once("/".to_string())
        .chain(
            ASSETS
                .iter()
                .map(|(p, _, _)| *p)
                .filter(|p| p.starts_with("console/") || p.starts_with("shared/"))
                .filter(|p| !p.ends_with(".html") && *p != "console/sw.js")
                .map(|p| format!("/web/{p}")),
        )
        .collect()
}

/// A version of the shell that changes whenever a file of it does: the service worker's
/// cache name. FNV-1a over the paths and bytes (read from disk under `KEFUD_WEB_DIR`, so an
/// edited file is picked up at the next load; computed once otherwise).
pub(super) fn version() -> String {
    fn digest() -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for (path, _, _) in ASSETS {
            feed(path.as_bytes());
            feed(&asset(path).unwrap_or_default());
        }
        h
    }
    static EMBEDDED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let h = if std::env::var_os("KEFUD_WEB_DIR").is_some() {
        digest()
    } else {
        *EMBEDDED.get_or_init(digest)
    };
    format!("{}-{h:016x}", env!("CARGO_PKG_VERSION"))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, GZIP;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
    }

    #[test]
    fn the_shell_is_the_console_and_never_data() {
        let shell = shell();
        assert_eq!(shell[0], "/");
        for url in [
            "/web/console/app.js",
            "/web/console/console.css",
            "/web/shared/i18n.js",
            "/web/console/icons/icon.svg",
            "/web/console/icons/icon-192.png",
            "/web/console/icons/icon-512.png",
        ] {
            assert!(shell.iter().any(|u| u == url), "{url} in the shell");
        }
        assert!(shell.iter().all(|u| u == "/" || u.starts_with("/web/")));
        assert!(!shell
            .iter()
            .any(|u| u.ends_with(".html") || u.ends_with("sw.js")));
        assert!(!shell.iter().any(|u| u.starts_with("/web/chat/")));
    }

    #[test]
    fn the_version_names_the_release_and_is_stable() {
        let v = version();
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")));
        assert_eq!(v, version());
    }

    #[test]
    fn the_table_is_sorted_for_binary_search() {
        assert!(ASSETS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
