//! Business hours under `/api/v1`: `GET /hours` (any agent) and `PUT /hours` (admins), kept
//! in the `settings` table as one JSON value (see [`crate::hours`]); a change is handed to
//! the dispatcher, which sends the away message by them. The widget's info says whether the
//! shop is open now ([`open_now`]).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, ApiJson, AppState, Authed};
use crate::dispatch::Command;
use crate::hours::{self, Hours, HoursJson};
use crate::store::queries;

pub fn router() -> Router<AppState> {
    Router::new().route("/hours", get(get_hours).put(put_hours))
}

async fn stored(app: &AppState) -> Result<Hours, ApiError> {
    let value = app
        .reads
        .run(|c| queries::setting(c, hours::SETTING_KEY))
        .await?;
    Ok(Hours::from_setting(value.as_deref()))
}

async fn get_hours(
    State(app): State<AppState>,
    Authed(_, _): Authed,
) -> Result<Json<HoursJson>, ApiError> {
    Ok(Json(stored(&app).await?.to_json()))
}

async fn put_hours(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiJson(body): ApiJson<HoursJson>,
) -> Result<Json<HoursJson>, ApiError> {
    if !agent.is_admin {
        return Err(ApiError::Forbidden);
    }
    let checked = Hours::checked(&body, app.cfg().limits.max_text_chars)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let json = checked.to_json();
    let value = serde_json::to_string(&json).expect("invariant: hours serialise");
    app.reads
        .run(move |c| {
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = ?2",
                [hours::SETTING_KEY, value.as_str()],
            )?;
            Ok::<_, crate::store::Error>(())
        })
        .await?;
    app.commands
        .send(Command::SetHours(Arc::new(checked)))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    tracing::info!(admin = %agent.username, enabled = json.enabled, "business hours changed");
    Ok(Json(json))
}

/// Whether the shop is open now on the box's clock, and the away message while it is not
/// (`None` while open): what the widget shows.
///
/// # Errors
/// A store failure.
pub async fn open_now(app: &AppState) -> Result<(bool, Option<String>), ApiError> {
    let h = stored(app).await?;
    let open = hours::is_open(&h, hours::local_time(crate::clock::now_ms()));
    Ok((open, (!open).then_some(h.away_message)))
}
