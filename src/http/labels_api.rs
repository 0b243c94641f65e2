//! Labels, under `/api/v1`: the shop's label definitions (admins define them: a name and a
//! colour) and the labels agents put on conversations (journaled, through the dispatcher).
//!
//! `GET /labels` (agents), `POST /labels` and `PUT|DELETE /labels/{id}` (admins),
//! `PUT /conversations/{id}/labels {"labels":[ids]}` (agents). The inbox filters by label
//! (`GET /conversations?label=ID`, see `agent_api.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;

use super::routing_api::require_admin;
use super::{ApiError, ApiJson, ApiPath, AppState, Authed};
use crate::dispatch::{Command, LabelConversation};
use crate::model::RowId;
use crate::store::queries::{self, LabelEdit};

/// The most labels one conversation carries.
pub const MAX_LABELS_PER_CONVERSATION: usize = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/labels", get(list).post(add))
        .route("/labels/{id}", put(edit).delete(delete))
        .route("/conversations/{id}/labels", put(label_conversation))
}

#[derive(Deserialize)]
struct LabelBody {
    name: String,
    color: String,
}

/// A label's name (1 to 40 characters, trimmed) and colour (`#rrggbb`, lowercased).
fn checked(body: LabelBody) -> Result<(String, String), ApiError> {
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 40 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad_label_name",
            "a label's name is 1 to 40 characters, without control characters",
        ));
    }
    let color = body.color.trim().to_ascii_lowercase();
    let hex = color.strip_prefix('#').unwrap_or("");
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "bad_label_color",
            "a label's colour is #rrggbb",
        ));
    }
    Ok((name, color))
}

async fn list(
    State(app): State<AppState>,
    Authed(_, _): Authed,
) -> Result<Json<serde_json::Value>, ApiError> {
    let labels = app.reads.run(queries::labels).await?;
    Ok(Json(serde_json::json!({ "labels": labels })))
}

async fn add(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiJson(body): ApiJson<LabelBody>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&agent)?;
    let (name, color) = checked(body)?;
    let shown = name.clone();
    let label = app
        .reads
        .run(move |c| queries::add_label(c, &name, &color, crate::model::now_ms()))
        .await?
        .ok_or_else(|| ApiError::Exists("label_exists", format!("a label {shown:?} exists")))?;
    Ok((StatusCode::CREATED, Json(label)))
}

async fn edit(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
    ApiJson(body): ApiJson<LabelBody>,
) -> Result<Json<queries::Label>, ApiError> {
    require_admin(&agent)?;
    let id = id.get();
    let (name, color) = checked(body)?;
    let (n, c) = (name.clone(), color.clone());
    match app
        .reads
        .run(move |conn| queries::edit_label(conn, id, &n, &c))
        .await?
    {
        LabelEdit::Done => Ok(Json(queries::Label { id, name, color })),
        LabelEdit::NoSuchLabel => Err(ApiError::NotFound(format!("label {id} not found"))),
        LabelEdit::NameTaken => Err(ApiError::Exists(
            "label_exists",
            format!("a label {name:?} exists"),
        )),
    }
}

async fn delete(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<StatusCode, ApiError> {
    require_admin(&agent)?;
    let id = id.get();
    if app.reads.run(move |c| queries::delete_label(c, id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("label {id} not found")))
    }
}

#[derive(Deserialize)]
struct ConversationLabels {
    labels: Vec<u64>,
}

/// Replaces a conversation's labels; answers once it is journaled.
async fn label_conversation(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
    ApiJson(body): ApiJson<ConversationLabels>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let conversation = id.get();
    let mut labels = body.labels;
    labels.sort_unstable();
    labels.dedup();
    if labels.len() > MAX_LABELS_PER_CONVERSATION {
        return Err(ApiError::bad_request(
            "too_many_labels",
            format!("a conversation carries at most {MAX_LABELS_PER_CONVERSATION} labels"),
        ));
    }
    let ids = labels.clone();
    let unknown = app
        .reads
        .run(move |c| queries::unknown_labels(c, &ids))
        .await?;
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(
            "unknown_label",
            format!("no label has the id {unknown:?}"),
        ));
    }
    let command = LabelConversation {
        conversation,
        labels: labels.clone(),
        by: agent.id,
    };
    app.dispatch(|reply| Command::Label(command, reply)).await?;
    Ok(Json(serde_json::json!({
        "conversation_id": conversation,
        "labels": labels,
    })))
}
