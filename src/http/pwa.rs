//! The agent console as an installable web app: the web app manifest
//! (`/manifest.webmanifest`, named after the shop), the service worker (`/sw.js`) and the
//! app icon as `/favicon.ico`.
//!
//! The worker is served from the root so its scope covers the console at `/`. It is the
//! template `web/console/sw.js` with one line put in front: the shell's version and URL list
//! ([`super::web::version`], [`super::web::shell`]), so every build (or edit under
//! `KEFUD_WEB_DIR`) makes a byte-different worker, which the browser installs, and which
//! drops the previous shell cache when it activates. What a customer or agent wrote never
//! goes into that cache: the worker answers from the cache only the shell's own URLs and
//! leaves every other request (`/api/`, `/ws/`, uploads, the chat page) to the network.
//! Both are answered with `Cache-Control: no-cache`, so an update is seen at the next load.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{extract::State, Json, Router};

use super::{web, ApiError, AppState};
use crate::store::queries;

/// The console's blue (`--primary` in web/shared/base.css) and page ground (`--bg`).
const THEME_COLOR: &str = "#2563eb";
const BACKGROUND_COLOR: &str = "#f4f5f7";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/manifest.webmanifest", get(manifest_handler))
        .route("/sw.js", get(service_worker_handler))
        .route("/favicon.ico", get(favicon))
}

/// What browsers ask for on pages with no icon of their own (`/healthz`, a bookmark): the
/// app icon, as PNG (which every browser takes under this name).
async fn favicon() -> Response {
    let Some(png) = web::asset("console/icons/icon-192.png") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        png.into_owned(),
    )
        .into_response()
}

async fn manifest_handler(State(app): State<AppState>) -> Result<Response, ApiError> {
    let shop = app
        .reads
        .run(|c| queries::setting(c, "shop_name"))
        .await?
        .unwrap_or_default();
    let mut response = Json(manifest(&shop)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/manifest+json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

async fn service_worker_handler() -> Response {
    let Some(template) = web::asset("console/sw.js") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = service_worker(&web::version(), &web::shell(), &template);
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("service-worker-allowed", HeaderValue::from_static("/"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The manifest for a shop (`kefud` until the shop is named). Pure.
pub fn manifest(shop_name: &str) -> serde_json::Value {
    let shop = shop_name.trim();
    let name = if shop.is_empty() {
        "kefud".to_string()
    } else {
        format!("{shop} · kefud")
    };
    // Launchers show about 12 characters under an icon.
    let short: String = if shop.is_empty() {
        "kefud".into()
    } else {
        shop.chars().take(12).collect()
    };
    serde_json::json!({
        "name": name,
        "short_name": short,
        "description": "The shop's customer-service console",
        "id": "/",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "theme_color": THEME_COLOR,
        "background_color": BACKGROUND_COLOR,
        "icons": [
            { "src": "/web/console/icons/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any" },
            { "src": "/web/console/icons/icon-192.png", "sizes": "192x192", "type": "image/png", "purpose": "any" },
            { "src": "/web/console/icons/icon-512.png", "sizes": "512x512", "type": "image/png", "purpose": "any" },
            { "src": "/web/console/icons/maskable-512.png", "sizes": "512x512", "type": "image/png", "purpose": "maskable" }
        ]
    })
}

/// The worker: `const BUILD = {"version": ..., "shell": [...]};` then the template. Pure.
pub fn service_worker(version: &str, shell: &[String], template: &[u8]) -> Vec<u8> {
    let build = serde_json::json!({ "version": version, "shell": shell });
    let mut out = format!("const BUILD = {build};\n").into_bytes();
    out.extend_from_slice(template);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_the_shop_and_is_installable() {
        let m = manifest("  Tea & Co. Fine Teas  ");
        assert_eq!(m["name"], "Tea & Co. Fine Teas · kefud");
        assert_eq!(m["short_name"], "Tea & Co. Fi");
        assert_eq!(m["start_url"], "/");
        assert_eq!(m["display"], "standalone");
        let sizes: Vec<&str> = m["icons"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "image/png")
            .map(|i| i["sizes"].as_str().unwrap())
            .collect();
        assert!(sizes.contains(&"192x192") && sizes.contains(&"512x512"));
        assert_eq!(manifest("")["name"], "kefud");
        assert_eq!(manifest(" ")["short_name"], "kefud");
    }

    #[test]
    fn every_icon_the_manifest_names_is_served() {
        for icon in manifest("x")["icons"].as_array().unwrap() {
            let src = icon["src"].as_str().unwrap();
            let raw = web::asset(src.strip_prefix("/web/").unwrap()).expect(src);
            if let Some(size) = icon["sizes"].as_str().unwrap().split('x').next() {
                if icon["type"] == "image/png" {
                    let size: u32 = size.parse().unwrap();
                    assert_eq!(&raw[..8], b"\x89PNG\r\n\x1a\n");
                    assert_eq!(&raw[12..16], b"IHDR");
                    assert_eq!(raw[16..20], size.to_be_bytes(), "{src} width");
                    assert_eq!(raw[20..24], size.to_be_bytes(), "{src} height");
                }
            }
        }
    }

    #[test]
    fn the_worker_carries_the_version_and_shell() {
        let sw = service_worker("1.2.3-ab", &["/".into(), "/web/a.js".into()], b"// body\n");
        let sw = String::from_utf8(sw).unwrap();
        assert_eq!(
            sw,
            "const BUILD = {\"shell\":[\"/\",\"/web/a.js\"],\"version\":\"1.2.3-ab\"};\n// body\n"
        );
    }
}
