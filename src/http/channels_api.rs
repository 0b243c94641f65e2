//! Channels in the API: the adapters' state (`GET /api/v1/channels`), linking two contacts
//! that are one person (`POST /api/v1/contacts/{id}/link {"contact_id"}`: the other contact's
//! identities, conversations and messages become this one's), and a reply's delivery state
//! (`GET /api/v1/messages/{id}/delivery`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::agent_api::dispatch;
use super::{ApiError, ApiJson, ApiPath, AppState, Authed};
use crate::dispatch::Command;
use crate::model::{ContactId, MessageId};
use crate::store::queries;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/channels", get(channels))
        .route("/contacts/{id}/link", post(link))
        .route("/messages/{id}/delivery", get(delivery))
}

async fn channels(
    State(app): State<AppState>,
    Authed(_, _): Authed,
) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "channels": app.channels.status() }))
}

#[derive(Deserialize)]
struct LinkBody {
    /// The contact that becomes part of the one in the path.
    contact_id: ContactId,
}

async fn link(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(keep): ApiPath<ContactId>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let accepted = dispatch(&app, |reply| Command::LinkContacts {
        keep,
        merged: body.contact_id,
        reply,
    })
    .await?;
    let conversation = (accepted.conversation != 0).then_some(accepted.conversation);
    Ok(Json(serde_json::json!({
        "contact_id": keep,
        "conversation_id": conversation,
    })))
}

async fn delivery(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(id): ApiPath<MessageId>,
) -> Result<Json<queries::DeliveryRow>, ApiError> {
    app.wait_store_current().await?;
    app.reads
        .run(move |c| queries::delivery(c, id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("message {id} has no delivery (not a reply to a routed channel)")))
}
