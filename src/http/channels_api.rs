//! Channels in the API: the adapters' state (`GET /api/v1/channels`), linking two contacts
//! that are one person (`POST /api/v1/contacts/{id}/link {"contact_id"}`: the other contact's
//! identities, conversations and messages become this one's; in cluster mode, whichever's
//! name and details are newer is kept, and the answer names it), and a reply's delivery state
//! (`GET /api/v1/messages/{id}/delivery`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiPath, AppState, Authed};
use crate::dispatch::{Command, LinkContacts};
use crate::model::RowId;
use crate::store::queries;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/channels", get(channels))
        .route("/contacts/{id}/link", post(link))
        .route("/messages/{id}/delivery", get(delivery))
}

async fn channels(State(app): State<AppState>, Authed(_, _): Authed) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "channels": app.channels.status() }))
}

#[derive(Deserialize)]
struct LinkBody {
    /// The contact that becomes part of the one in the path.
    contact_id: RowId,
}

async fn link(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(keep): ApiPath<RowId>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let keep = keep.get();
    let merged = body.contact_id.get();
    let link = LinkContacts { keep, merged };
    let accepted = app
        .dispatch(|reply| Command::LinkContacts(link, reply))
        .await?;
    let conversation = (accepted.conversation != 0).then_some(accepted.conversation);
    // In cluster mode the contact whose name and details are newer is the one kept.
    let kept = if app.cluster.is_some() {
        app.wait_applied(accepted.lsn).await?;
        if app
            .reads
            .run(move |c| queries::contact_exists(c, keep))
            .await?
        {
            keep
        } else {
            merged
        }
    } else {
        keep
    };
    Ok(Json(serde_json::json!({
        "contact_id": kept,
        "conversation_id": conversation,
    })))
}

/// The delivery row, and which adapter delivers its channel (`null`: none is configured, so
/// it stays pending).
async fn delivery(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = id.get();
    app.wait_store_current().await?;
    let row = app
        .reads
        .run(move |c| queries::delivery(c, id))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "message {id} has no delivery (not a reply to a channel other than web)"
            ))
        })?;
    let adapter = app
        .channels
        .routes()
        .adapter_for(&row.channel)
        .map(str::to_string);
    let mut v = serde_json::to_value(row).map_err(|e| ApiError::Internal(e.to_string()))?;
    v["adapter"] = adapter.into();
    Ok(Json(v))
}
