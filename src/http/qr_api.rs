//! `GET /api/v1/qr.svg?text=...&size=...`: a QR code of `text` as SVG (see [`crate::qr`]),
//! for the console's printable code of the `/chat` address. Agents only; the answer is
//! private to the browser that asked.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{ApiError, ApiQuery, AppState, Authed};
use crate::qr::{self, QrError};

pub fn router() -> Router<AppState> {
    Router::new().route("/qr.svg", get(qr_svg))
}

/// The size a code is drawn at when the caller does not say.
const DEFAULT_SIZE_PX: u32 = 512;

#[derive(Deserialize)]
struct QrQuery {
    #[serde(default)]
    text: String,
    size: Option<String>,
}

async fn qr_svg(
    Authed(_, _): Authed,
    ApiQuery(q): ApiQuery<QrQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let size = match q.size.as_deref() {
        None => DEFAULT_SIZE_PX,
        Some(s) => s.parse().map_err(|_| size_error())?,
    };
    let svg = qr::svg(&q.text, size).map_err(|e| match e {
        QrError::BadSize => size_error(),
        other => ApiError::bad_request("bad_qr_text", other.to_string()),
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        svg,
    ))
}

fn size_error() -> ApiError {
    ApiError::bad_request(
        "bad_qr_size",
        format!(
            "size must be a whole number of pixels from {} to {}",
            qr::MIN_SIZE_PX,
            qr::MAX_SIZE_PX
        ),
    )
}
