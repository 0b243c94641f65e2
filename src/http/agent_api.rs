//! The agent API under `/api/v1`: login, the inbox, a conversation's thread, replies and
//! status changes. Writes return only after their journal record is durable; reads wait until
//! the store has applied everything durable, so an agent always reads their own writes.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, Authed};
use crate::auth::{self, AuthError};
use crate::conversation::Status;
use crate::dispatch::{AgentMessage, Assign, Command, Reopen, Resolve};
use crate::login::Key;
use crate::model::{bounded_id, check_text, After, ConversationId, Identity, RowId};
use crate::store::queries::{self, AssigneeFilter, InboxFilter, StatusFilter};
use crate::wire::MessageView;

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/clock", get(clock))
        .route("/agents", get(agents))
        .route("/conversations", get(list_conversations))
        .route("/conversations/resolve", post(resolve_many))
        .route("/conversations/{id}", get(get_conversation))
        .route(
            "/conversations/{id}/messages",
            get(list_messages).post(post_message),
        )
        .route("/conversations/{id}/assign", post(assign))
        .route("/conversations/{id}/resolve", post(resolve))
        .route("/conversations/{id}/reopen", post(reopen))
        .route("/search", get(search))
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    /// The device proof this browser got at an earlier login, if any.
    #[serde(default)]
    device: Option<String>,
}

/// Longer names cannot exist (see `auth::valid_username`); longer passwords are refused
/// before Argon2 ever sees them.
const MAX_USERNAME_BYTES: usize = 64;
const MAX_PASSWORD_BYTES: usize = 1024;

/// Logs in: counted by the limiter first, then checked behind the password gate. Answers the
/// token and a device proof that lets this browser in while others' failures block the
/// account or the address (see `login.rs`).
async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let guard = &app.login;
    let username = body.username.trim().to_string();
    let device = body
        .device
        .as_deref()
        .filter(|_| username.len() <= MAX_USERNAME_BYTES)
        .and_then(|proof| guard.devices.verify(&username, proof))
        .map(str::to_owned);
    let keys: Vec<Key<'_>> = match device.as_deref() {
        Some(nonce) => vec![Key::Device(nonce)],
        None if username.len() <= MAX_USERNAME_BYTES => {
            vec![Key::Account(&username), Key::Address(peer.ip())]
        }
        None => vec![Key::Address(peer.ip())],
    };
    let attempt = guard
        .limiter
        .begin(&keys)
        .map_err(|_| ApiError::TooManyRequests)?;
    if username.len() > MAX_USERNAME_BYTES || body.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::InvalidCredentials);
    }
    let ttl = Duration::from_secs(app.cfg().auth.token_ttl_secs);
    let result = {
        let _turn = guard.gate.enter().await.map_err(|_| ApiError::Busy)?;
        let username = username.clone();
        app.reads
            .run(move |conn| auth::login(conn, &username, &body.password, ttl))
            .await
    };
    match result {
        Ok((token, agent)) => {
            guard.limiter.succeeded(attempt);
            let device = match (device, body.device) {
                (Some(_), Some(proof)) => proof,
                _ => guard.devices.issue(&username),
            };
            Ok(Json(serde_json::json!({
                "token": token,
                "expires_in": ttl.as_secs(),
                "agent": agent,
                "device": device,
            })))
        }
        // The attempt stays counted.
        Err(AuthError::InvalidCredentials) => Err(ApiError::InvalidCredentials),
        Err(e) => {
            guard.limiter.succeeded(attempt);
            Err(e.into())
        }
    }
}

async fn logout(
    State(app): State<AppState>,
    Authed(_, token): Authed,
) -> Result<StatusCode, ApiError> {
    app.reads
        .run(move |conn| auth::logout(conn, &token))
        .await?;
    app.tokens_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// The box's clock as kefud sees it: whether the system has synchronised it (until then the
/// console marks times as uncertain), steps seen since start, and kefud's time now.
async fn clock(Authed(_, _): Authed) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "synchronized": crate::clock::synchronized(),
        "steps": crate::clock::steps(),
        "now": crate::clock::now_ms(),
    }))
}

async fn me(Authed(agent, _): Authed) -> Json<auth::Agent> {
    Json(agent)
}

async fn agents(
    State(app): State<AppState>,
    Authed(_, _): Authed,
) -> Result<Json<Vec<auth::Agent>>, ApiError> {
    Ok(Json(app.reads.run(auth::list_agents).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
    /// Cursor: the `last_activity_at` and `id` of the last conversation of the previous page.
    before_activity: Option<i64>,
    before_id: Option<RowId>,
    /// Only conversations with this label.
    label: Option<RowId>,
    /// Only conversations held by this agent (an id, `me`), or by nobody (`none`).
    assignee: Option<String>,
}

async fn list_conversations(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") | Some("all") => StatusFilter::All,
        Some("open") => StatusFilter::Open,
        Some(s) => StatusFilter::Is(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "bad_status",
                format!(
                    "unknown status {s:?}; use waiting, in_progress, resolved, idle, open or all"
                ),
            )
        })?),
    };
    let assignee = match q.assignee.as_deref() {
        None | Some("") | Some("any") => AssigneeFilter::Anyone,
        Some("none") => AssigneeFilter::Nobody,
        Some("me") => AssigneeFilter::Agent(agent.id),
        Some(a) => AssigneeFilter::Agent(
            a.parse::<u64>()
                .ok()
                .and_then(|id| RowId::try_from(id).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_assignee",
                        format!("assignee {a:?}: use an agent id, me, none or any"),
                    )
                })?
                .get(),
        ),
    };
    let filter = InboxFilter {
        status,
        assignee,
        label: q.label.map(RowId::get),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let before = match (q.before_activity, q.before_id) {
        (Some(a), Some(i)) => Some((a, i.get())),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "bad_query",
                "before_activity and before_id go together",
            ))
        }
    };
    app.wait_store_current().await?;
    let rows = app
        .reads
        .run(move |conn| queries::list_conversations(conn, filter, before, limit))
        .await?;
    Ok(Json(serde_json::json!({ "conversations": rows })))
}

async fn get_conversation(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<Json<queries::ConversationRow>, ApiError> {
    let id = id.get();
    app.wait_store_current().await?;
    conversation_or_404(&app, id).await.map(Json)
}

async fn conversation_or_404(
    app: &AppState,
    id: ConversationId,
) -> Result<queries::ConversationRow, ApiError> {
    app.reads
        .run(move |conn| queries::conversation(conn, id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("conversation {id} not found")))
}

#[derive(Deserialize)]
struct MessagesQuery {
    after: Option<After>,
    limit: Option<u32>,
}

async fn list_messages(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(id): ApiPath<RowId>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = id.get();
    app.wait_store_current().await?;
    conversation_or_404(&app, id).await?;
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let after = q.after.map_or(0, After::get);
    // Every box of a cluster lists a conversation in the same order.
    let order = if app.cluster.is_some() {
        queries::MessageOrder::Cluster
    } else {
        queries::MessageOrder::Local
    };
    let rows = app
        .reads
        .run(move |conn| queries::conversation_messages(conn, id, after, limit, order))
        .await?;
    let views: Vec<MessageView<'_>> = rows.iter().map(MessageView::from).collect();
    Ok(Json(serde_json::json!({ "messages": views })))
}

#[derive(Deserialize)]
struct PostMessage {
    text: String,
    /// Send on this identity of the contact (`{"channel","external_id"}`) instead of the one
    /// the customer last wrote from.
    via: Option<ViaBody>,
}

#[derive(Deserialize)]
struct ViaBody {
    channel: String,
    external_id: String,
}

async fn post_message(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
    ApiJson(body): ApiJson<PostMessage>,
) -> Result<impl IntoResponse, ApiError> {
    let id = id.get();
    check_text(&body.text, app.cfg().limits.max_text_chars)?;
    let via = match body.via {
        Some(v) => Some(Identity {
            channel: bounded_id(&v.channel)
                .map_err(|e| ApiError::bad_request("bad_via", format!("via.channel {e}")))?,
            external_id: bounded_id(&v.external_id)
                .map_err(|e| ApiError::bad_request("bad_via", format!("via.external_id {e}")))?,
        }),
        None => None,
    };
    let message = AgentMessage {
        conversation: id,
        agent: agent.id,
        text: body.text,
        via,
    };
    let accepted = app
        .dispatch(|reply| Command::AgentMessage(message, reply))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({ "message_id": accepted.message_id, "conversation_id": accepted.conversation }),
        ),
    ))
}

#[derive(Deserialize, Default)]
struct AssignBody {
    /// Whom to assign to; the caller when absent.
    agent_id: Option<RowId>,
    /// Cluster mode: the box the agent signs in on (its node id, hex), when another.
    node: Option<String>,
}

async fn assign(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
    body: axum::body::Bytes,
) -> Result<Json<queries::ConversationRow>, ApiError> {
    let id = id.get();
    let body: AssignBody = if body.iter().all(u8::is_ascii_whitespace) {
        AssignBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| super::refused("bad_json", e.to_string()))?
    };
    let to = body.agent_id.map_or(agent.id, RowId::get);
    if let Some(node) = body.node.as_deref() {
        if super::cluster_api::is_elsewhere(&app, node)? {
            super::cluster_api::assign_elsewhere(&app, id, node, to, agent.id).await?;
            app.wait_store_current().await?;
            return conversation_or_404(&app, id).await.map(Json);
        }
    }
    if to != agent.id {
        let target = app
            .reads
            .run(move |conn| auth::agent_by_id(conn, to))
            .await?;
        match target {
            Some(t) if !t.disabled => {}
            _ => {
                return Err(ApiError::bad_request(
                    "bad_agent",
                    format!("no enabled agent with id {to}"),
                ))
            }
        }
    }
    let assign = Assign {
        conversation: id,
        to,
        by: agent.id,
    };
    app.dispatch(|reply| Command::Assign(assign, reply)).await?;
    app.wait_store_current().await?;
    conversation_or_404(&app, id).await.map(Json)
}

async fn resolve(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<Json<queries::ConversationRow>, ApiError> {
    let id = id.get();
    let resolve = Resolve {
        conversation: id,
        by: agent.id,
    };
    app.dispatch(|reply| Command::Resolve(resolve, reply))
        .await?;
    app.wait_store_current().await?;
    conversation_or_404(&app, id).await.map(Json)
}

#[derive(Deserialize)]
struct ResolveMany {
    ids: Vec<RowId>,
}

/// The most conversations one bulk resolve takes.
const MAX_BULK_RESOLVE: usize = 200;

/// Resolves several conversations, each on its own: answers which were resolved and why the
/// others were not (a conversation already resolved or closed is refused, not an error of the
/// whole request).
async fn resolve_many(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiJson(body): ApiJson<ResolveMany>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if body.ids.is_empty() || body.ids.len() > MAX_BULK_RESOLVE {
        return Err(ApiError::bad_request(
            "bad_ids",
            format!("ids lists 1 to {MAX_BULK_RESOLVE} conversations"),
        ));
    }
    let mut resolved = Vec::new();
    let mut refused = Vec::new();
    for id in body.ids {
        let conversation = id.get();
        let resolve = Resolve {
            conversation,
            by: agent.id,
        };
        match app.dispatch(|reply| Command::Resolve(resolve, reply)).await {
            Ok(_) => resolved.push(conversation),
            Err(ApiError::Unavailable) => return Err(ApiError::Unavailable),
            Err(e) => {
                let (code, message) = e.code_and_message();
                refused.push(serde_json::json!({
                    "id": conversation, "code": code, "message": message,
                }));
            }
        }
    }
    Ok(Json(
        serde_json::json!({ "resolved": resolved, "refused": refused }),
    ))
}

async fn reopen(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<Json<queries::ConversationRow>, ApiError> {
    let id = id.get();
    let reopen = Reopen {
        conversation: id,
        by: agent.id,
    };
    app.dispatch(|reply| Command::Reopen(reopen, reply)).await?;
    app.wait_store_current().await?;
    conversation_or_404(&app, id).await.map(Json)
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    limit: Option<u32>,
}

async fn search(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = q.q.trim().to_string();
    if query.is_empty() {
        return Err(ApiError::bad_request("empty_query", "q must not be empty"));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    app.wait_store_current().await?;
    let (rows, contacts, names) = app
        .reads
        .run(move |conn| {
            let rows = queries::search_messages(conn, &query, limit)?;
            let contacts = queries::search_contacts(conn, &query, 20)?;
            let mut ids: Vec<u64> = rows.iter().map(|m| m.contact_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let names = queries::contact_names(conn, &ids)?;
            Ok::<_, crate::store::Error>((rows, contacts, names))
        })
        .await?;
    let views: Vec<serde_json::Value> = rows
        .iter()
        .map(|m| {
            let mut v = serde_json::to_value(MessageView::from(m)).unwrap_or_default();
            if let Some(name) = names.get(&m.contact_id) {
                v["contact_name"] = serde_json::Value::from(name.as_str());
            }
            v
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "messages": views, "contacts": contacts }),
    ))
}
