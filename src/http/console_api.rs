//! The API behind the console and the widget, under `/api/v1`: first-run setup, shop
//! settings, what the widget needs to know, private notes, typing, contacts, canned replies,
//! agent accounts. The images customers send are `uploads.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::{ApiError, ApiJson, ApiPath, AppState, Authed};
use crate::auth::{self, Agent};
use crate::dispatch::{AgentNote, AgentTyping, Command};
use crate::model::{check_text, RowId};
use crate::store::queries;

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/setup", get(setup_needed).post(setup))
        .route("/settings", get(settings).put(put_settings))
        .route("/widget/info", get(widget_info))
        .route("/conversations/{id}/notes", post(post_note))
        .route("/conversations/{id}/typing", post(typing))
        .route("/contacts/{id}", get(contact).put(edit_contact))
        .route("/canned", get(list_canned).post(add_canned))
        .route("/canned/{id}", put(edit_canned).delete(delete_canned))
        .route("/agents", post(add_agent))
        .route("/agents/{id}/password", post(reset_password))
}

fn require_admin(agent: &Agent) -> Result<(), ApiError> {
    if agent.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

async fn setup_needed(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let agents = app.reads.run(auth::list_agents).await?;
    Ok(Json(serde_json::json!({ "needed": agents.is_empty() })))
}

#[derive(Deserialize)]
struct SetupBody {
    shop_name: String,
    username: String,
    #[serde(default)]
    display_name: String,
    password: String,
}

/// First run: creates the admin (only while no agent exists) and logs them in.
async fn setup(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<SetupBody>,
) -> Result<impl IntoResponse, ApiError> {
    let shop_name = body.shop_name.trim().to_string();
    if shop_name.is_empty() || shop_name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "bad_shop_name",
            "shop_name must be 1 to 100 characters",
        ));
    }
    let ttl = std::time::Duration::from_secs(app.cfg().auth.token_ttl_secs);
    let _turn = app.login.gate.enter().await.map_err(|_| ApiError::Busy)?;
    let (token, agent) = app
        .reads
        .run(move |conn| {
            auth::first_admin(
                conn,
                body.username.trim(),
                &body.display_name,
                &body.password,
            )?;
            set_shop_name(conn, &shop_name)?;
            auth::login(conn, body.username.trim(), &body.password, ttl)
        })
        .await?;
    tracing::info!(admin = %agent.username, "first-run setup: admin created");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "token": token, "expires_in": ttl.as_secs(), "agent": agent })),
    ))
}

fn set_shop_name(conn: &rusqlite::Connection, name: &str) -> Result<(), crate::store::Error> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('shop_name', ?1)
         ON CONFLICT (key) DO UPDATE SET value = ?1",
        [name],
    )?;
    Ok(())
}

async fn shop_name(app: &AppState) -> Result<String, ApiError> {
    Ok(app
        .reads
        .run(|c| queries::setting(c, "shop_name"))
        .await?
        .unwrap_or_default())
}

async fn settings(
    State(app): State<AppState>,
    Authed(_, _): Authed,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::json!({ "shop_name": shop_name(&app).await? }),
    ))
}

#[derive(Deserialize)]
struct SettingsBody {
    shop_name: String,
}

async fn put_settings(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&agent)?;
    let name = body.shop_name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "bad_shop_name",
            "shop_name must be 1 to 100 characters",
        ));
    }
    let stored = name.clone();
    app.reads.run(move |c| set_shop_name(c, &stored)).await?;
    Ok(Json(serde_json::json!({ "shop_name": name })))
}

/// What the widget shows before a customer writes: the shop's name, and whether anyone is
/// there to answer.
async fn widget_info(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let (tx, rx) = oneshot::channel();
    app.commands
        .send(Command::Roster { reply: tx })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let online = rx
        .await
        .map_err(|_| ApiError::Unavailable)?
        .iter()
        .filter(|(_, slot)| slot.is_online())
        .count();
    Ok(Json(serde_json::json!({
        "shop_name": shop_name(&app).await?,
        "agents_online": online,
        "prechat": super::visitor_api::prechat_setting(&app).await?,
    })))
}

#[derive(Deserialize)]
struct NoteBody {
    text: String,
}

async fn post_note(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
    ApiJson(body): ApiJson<NoteBody>,
) -> Result<impl IntoResponse, ApiError> {
    let id = id.get();
    let text = body.text.trim().to_string();
    check_text(&text, app.cfg().limits.max_text_chars)?;
    let note = AgentNote {
        conversation: id,
        agent: agent.id,
        text,
    };
    let accepted = app
        .dispatch(|reply| Command::AgentNote(note, reply))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "message_id": accepted.message_id })),
    ))
}

async fn typing(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<StatusCode, ApiError> {
    let id = id.get();
    let (tx, rx) = oneshot::channel();
    app.commands
        .send(Command::AgentTyping(AgentTyping { conversation: id }, tx))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    // The widget's sockets were told by the dispatcher; a customer on another channel is
    // told by its adapter, if the channel has typing indicators.
    if let Some(route) = rx.await.map_err(|_| ApiError::Unavailable)?? {
        app.channels.typing(&route);
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn contact(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = id.get();
    app.wait_store_current().await?;
    let (identities, conversations, details) = app
        .reads
        .run(move |c| {
            Ok::<_, crate::store::Error>((
                queries::contact_identities(c, id)?,
                queries::contact_conversations(c, id)?,
                queries::contact_details(c, id)?,
            ))
        })
        .await?;
    if identities.is_empty() {
        return Err(ApiError::NotFound(format!("contact {id} not found")));
    }
    let identities: Vec<serde_json::Value> = identities
        .into_iter()
        .map(|(channel, external_id)| serde_json::json!({"channel": channel, "external_id": external_id}))
        .collect();
    let (name, details) = details.unwrap_or_default();
    let details: serde_json::Value =
        serde_json::from_str(&details).unwrap_or(serde_json::Value::Null);
    let field = |key: &str| details.get(key).and_then(|v| v.as_str()).unwrap_or("");
    Ok(Json(serde_json::json!({
        "id": id,
        "name": name,
        "phone": field("phone"),
        "email": field("email"),
        "notes": field("notes"),
        "details": details,
        "identities": identities,
        "conversations": conversations,
    })))
}

/// An agent records a contact's name, phone, e-mail and notes (each optional: one not given
/// stays; an empty one is removed). Journaled; answers with the contact as it is now.
async fn edit_contact(
    State(app): State<AppState>,
    authed: Authed,
    ApiPath(id): ApiPath<RowId>,
    ApiJson(body): ApiJson<crate::contact_profile::ProfileChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let contact_id = id.get();
    let change = body
        .checked()
        .map_err(|e| ApiError::bad_request("bad_profile", e.to_string()))?;
    app.wait_store_current().await?;
    let stored = app
        .reads
        .run(move |c| queries::contact_details(c, contact_id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("contact {contact_id} not found")))?;
    let (name, details) = change.apply(&stored.0, &stored.1);
    let edit = crate::dispatch::EditContact {
        contact: contact_id,
        name,
        details,
    };
    app.dispatch(|reply| Command::EditContact(edit, reply))
        .await?;
    contact(State(app), authed, ApiPath(id)).await
}

async fn list_canned(
    State(app): State<AppState>,
    Authed(_, _): Authed,
) -> Result<Json<serde_json::Value>, ApiError> {
    let canned = app.reads.run(queries::canned_replies).await?;
    Ok(Json(serde_json::json!({ "canned": canned })))
}

#[derive(Deserialize)]
struct CannedBody {
    shortcut: String,
    text: String,
}

/// The shortcut and text of a canned reply. Its text is checked as a message's: an agent sends
/// it as one.
fn checked_canned(body: CannedBody, max_text_chars: usize) -> Result<(String, String), ApiError> {
    let shortcut = body.shortcut.trim().trim_start_matches('/').to_string();
    let text = body.text.trim().to_string();
    if shortcut.is_empty()
        || shortcut.chars().count() > 32
        || shortcut.contains(char::is_whitespace)
    {
        return Err(ApiError::bad_request(
            "bad_shortcut",
            "shortcut must be 1 to 32 characters without spaces",
        ));
    }
    check_text(&text, max_text_chars)?;
    Ok((shortcut, text))
}

fn canned_write_error(e: crate::store::Error) -> ApiError {
    match e {
        crate::store::Error::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            ApiError::Exists(
                "already_exists",
                "a canned reply with that shortcut exists".into(),
            )
        }
        other => other.into(),
    }
}

async fn add_canned(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiJson(body): ApiJson<CannedBody>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&agent)?;
    let (shortcut, text) = checked_canned(body, app.cfg().limits.max_text_chars)?;
    let item = app
        .reads
        .run(move |c| {
            c.execute(
                "INSERT INTO canned_replies (shortcut, text, created_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![shortcut, text, crate::model::now_ms()],
            )?;
            Ok::<_, crate::store::Error>(queries::CannedReply {
                id: c.last_insert_rowid(),
                shortcut,
                text,
            })
        })
        .await
        .map_err(canned_write_error)?;
    Ok((StatusCode::CREATED, Json(item)))
}

async fn edit_canned(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
    ApiJson(body): ApiJson<CannedBody>,
) -> Result<Json<queries::CannedReply>, ApiError> {
    let id = id.as_i64();
    require_admin(&agent)?;
    let (shortcut, text) = checked_canned(body, app.cfg().limits.max_text_chars)?;
    let (s, t) = (shortcut.clone(), text.clone());
    let changed = app
        .reads
        .run(move |c| {
            Ok::<_, crate::store::Error>(c.execute(
                "UPDATE canned_replies SET shortcut = ?2, text = ?3 WHERE id = ?1",
                rusqlite::params![id, s, t],
            )?)
        })
        .await
        .map_err(canned_write_error)?;
    if changed == 0 {
        return Err(ApiError::NotFound(format!("canned reply {id} not found")));
    }
    Ok(Json(queries::CannedReply { id, shortcut, text }))
}

async fn delete_canned(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<StatusCode, ApiError> {
    let id = id.as_i64();
    require_admin(&agent)?;
    let changed = app
        .reads
        .run(move |c| {
            Ok::<_, crate::store::Error>(
                c.execute("DELETE FROM canned_replies WHERE id = ?1", [id])?,
            )
        })
        .await?;
    if changed == 0 {
        return Err(ApiError::NotFound(format!("canned reply {id} not found")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct NewAgent {
    username: String,
    #[serde(default)]
    display_name: String,
    password: String,
    #[serde(default)]
    is_admin: bool,
}

async fn add_agent(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiJson(body): ApiJson<NewAgent>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&agent)?;
    let _turn = app.login.gate.enter().await.map_err(|_| ApiError::Busy)?;
    let created = app
        .reads
        .run(move |c| {
            auth::add_agent(
                c,
                body.username.trim(),
                &body.display_name,
                &body.password,
                body.is_admin,
            )
        })
        .await?;
    let _ = app
        .commands
        .send(Command::AgentChanged { agent: created.id })
        .await;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

async fn reset_password(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let id = id.get();
    require_admin(&agent)?;
    let _turn = app.login.gate.enter().await.map_err(|_| ApiError::Busy)?;
    app.reads
        .run(move |c| auth::set_password_by_id(c, id, &body.password))
        .await?;
    app.tokens_changed();
    Ok(StatusCode::NO_CONTENT)
}
