//! The HTTP API channel: an integrator's system (an app backend, a kiosk) posts customer
//! messages with an API key, `POST /api/v1/inbox/{channel}/messages`
//! `{"contact_id","client_id","text"}` → `202 {"message_id"}` once the message is durable;
//! the same `client_id` again gets the same `message_id` and is stored once. The contact is
//! the identity `(channel, contact_id)`.
//!
//! Keys (admin): `POST /api/v1/apikeys {"channel","name"}` → the key, shown once;
//! `GET /api/v1/apikeys`; `DELETE /api/v1/apikeys/{id}` revokes.

use axum::extract::State;
use axum::http::{request::Parts, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiPath, AppState, Authed};
use crate::apikeys::{self, KeyError};
use crate::channel::{Inbound, InboundError};
use crate::model::RowId;

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/inbox/{channel}/messages", post(inbox_message))
        .route("/apikeys", get(list_keys).post(create_key))
        .route("/apikeys/{id}", delete(revoke_key))
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::BadChannel => ApiError::bad_request("bad_channel", e.to_string()),
            KeyError::BadName => ApiError::bad_request("bad_name", e.to_string()),
            KeyError::NoSuchKey(_) => ApiError::NotFound(e.to_string()),
            KeyError::Random(m) => ApiError::Internal(m),
            KeyError::Store(s) => s.into(),
        }
    }
}

impl From<InboundError> for ApiError {
    fn from(e: InboundError) -> Self {
        match e {
            InboundError::Invalid { code, message } => ApiError::bad_request(code, message),
            InboundError::Unavailable => ApiError::Unavailable,
            InboundError::Failed(m) => ApiError::Internal(m),
        }
    }
}

/// The API key of a request: `Authorization: Bearer KEY` or `X-Api-Key: KEY`.
fn api_key(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get("x-api-key") {
        return v.to_str().ok().map(|s| s.trim().to_string());
    }
    super::bearer_token(parts)
}

#[derive(Deserialize)]
struct InboxMessage {
    contact_id: String,
    client_id: String,
    text: String,
}

async fn inbox_message(
    State(app): State<AppState>,
    ApiPath(channel): ApiPath<String>,
    request: axum::extract::Request,
) -> Result<impl IntoResponse, ApiError> {
    let (parts, body) = request.into_parts();
    let key = api_key(&parts).ok_or(ApiError::Unauthorized)?;
    let key_channel = app
        .reads
        .run(move |c| apikeys::authenticate(c, &key))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if key_channel != channel {
        return Err(ApiError::Forbidden);
    }
    let ApiJson(msg) = <ApiJson<InboxMessage> as axum::extract::FromRequest<()>>::from_request(
        axum::extract::Request::from_parts(parts, body),
        &(),
    )
    .await?;
    let inbound = Inbound::new(
        app.commands.clone(),
        app.durable.clone(),
        app.cfg().limits.max_text_chars,
    );
    let message_id = inbound
        .submit(&channel, &msg.contact_id, &msg.client_id, msg.text)
        .await?
        .durable()
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "message_id": message_id })),
    ))
}

#[derive(Deserialize)]
struct NewKey {
    channel: String,
    #[serde(default)]
    name: String,
}

async fn create_key(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<impl IntoResponse, ApiError> {
    if !agent.is_admin {
        return Err(ApiError::Forbidden);
    }
    let (key, record) = app
        .reads
        .run(move |c| apikeys::create(c, body.channel.trim(), body.name.trim()))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "key": key, "api_key": record })),
    ))
}

async fn list_keys(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !agent.is_admin {
        return Err(ApiError::Forbidden);
    }
    let keys = app.reads.run(apikeys::list).await?;
    Ok(Json(serde_json::json!({ "api_keys": keys })))
}

async fn revoke_key(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<StatusCode, ApiError> {
    let id = id.as_i64();
    if !agent.is_admin {
        return Err(ApiError::Forbidden);
    }
    app.reads.run(move |c| apikeys::revoke(c, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
