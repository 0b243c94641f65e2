//! The API behind the console and the widget, under `/api/v1`: first-run setup, shop
//! settings, what the widget needs to know, private notes, typing, contacts, canned replies,
//! agent accounts, and the images customers send.
//!
//! Uploads: a file is stored under `data_dir/uploads/` named by the SHA-256 of its content
//! and an extension chosen from its first bytes (PNG, JPEG, GIF, WebP; anything else is
//! refused whatever its declared type), written to a temporary file, fsync'd and renamed, so a
//! message never refers to half a file. Agents read uploads with their token; a visitor only
//! their own. Uploads are anonymous (the widget's visitors), so they are bounded: 5 MiB each,
//! 50 MiB per visitor per day, and never into the last 256 MiB of free disk, which belong to
//! the journal.

use std::io::Write;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, Authed};
use crate::auth::{self, Agent};
use crate::dispatch::{Command, Reply};
use crate::model::{bounded_id, RowId};
use crate::store::queries;
use crate::wire::is_upload_id;

/// Largest image a customer may send.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// Bytes one visitor may upload in 24 hours.
pub const VISITOR_DAILY_UPLOAD_BYTES: i64 = 50 * 1024 * 1024;
/// Free space uploads never take: it stays for the journal and the store (the messages
/// themselves), whatever anonymous visitors send.
pub const UPLOAD_DISK_RESERVE_BYTES: u64 = 256 * 1024 * 1024;

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/setup", get(setup_needed).post(setup))
        .route("/settings", get(settings).put(put_settings))
        .route("/widget/info", get(widget_info))
        .route("/conversations/{id}/notes", post(post_note))
        .route("/conversations/{id}/typing", post(typing))
        .route("/contacts/{id}", get(contact))
        .route("/canned", get(list_canned).post(add_canned))
        .route("/canned/{id}", put(edit_canned).delete(delete_canned))
        .route("/agents", post(add_agent))
        .route("/agents/{id}/password", post(reset_password))
        .route(
            "/visitor/uploads",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1024)),
        )
        .route("/visitor/uploads/{id}", get(visitor_upload))
        .route("/uploads/{id}", get(agent_upload))
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
    let max = app.cfg().limits.max_text_chars;
    if text.is_empty() || text.chars().count() > max {
        return Err(ApiError::bad_request(
            "bad_text",
            format!("a note must be 1 to {max} characters"),
        ));
    }
    let (tx, rx) = oneshot::channel();
    app.commands
        .send(Command::AgentNote {
            conversation: id,
            agent: agent.id,
            text,
            reply: Reply::Once(tx),
        })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let accepted = rx.await.map_err(|_| ApiError::Unavailable)??;
    app.wait_durable(accepted.lsn).await?;
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
        .send(Command::AgentTyping {
            conversation: id,
            reply: tx,
        })
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
    let (identities, conversations) = app
        .reads
        .run(move |c| {
            Ok::<_, crate::store::Error>((
                queries::contact_identities(c, id)?,
                queries::contact_conversations(c, id)?,
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
    Ok(Json(serde_json::json!({
        "id": id,
        "identities": identities,
        "conversations": conversations,
    })))
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

fn checked_canned(body: CannedBody) -> Result<(String, String), ApiError> {
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
    if text.is_empty() || text.chars().count() > 4000 {
        return Err(ApiError::bad_request(
            "bad_text",
            "text must be 1 to 4000 characters",
        ));
    }
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
    let (shortcut, text) = checked_canned(body)?;
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
    let (shortcut, text) = checked_canned(body)?;
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
    app.reads
        .run(move |c| auth::set_password_by_id(c, id, &body.password))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct VisitorQuery {
    visitor_id: String,
}

/// The image type from the file's first bytes: (extension, content type).
pub fn sniff_image(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(("png", "image/png"))
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(("jpg", "image/jpeg"))
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(("gif", "image/gif"))
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(("webp", "image/webp"))
    } else {
        None
    }
}

fn content_type_of(upload: &str) -> &'static str {
    match upload.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}

async fn upload(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<VisitorQuery>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let visitor = bounded_id::<{ crate::model::EXTERNAL_ID_MAX }>(&q.visitor_id)
        .map_err(|e| ApiError::bad_request("bad_visitor_id", format!("visitor_id {e}")))?;
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "an image may have at most {MAX_UPLOAD_BYTES} bytes"
        )));
    }
    let (ext, _) = sniff_image(&body).ok_or_else(|| {
        ApiError::UnsupportedMedia("only PNG, JPEG, GIF and WebP images can be sent".into())
    })?;
    let id = format!("{}.{ext}", hex(&Sha256::digest(&body)));
    let dir = app.cfg().storage.data_dir.join("uploads");
    let (who, since) = (visitor.to_string(), crate::model::now_ms() - 86_400_000);
    let recent: i64 = app
        .reads
        .run(move |c| {
            Ok::<_, crate::store::Error>(c.query_row(
                "SELECT COALESCE(SUM(bytes), 0) FROM uploads WHERE visitor = ?1 AND created_at > ?2",
                rusqlite::params![who, since],
                |r| r.get(0),
            )?)
        })
        .await?;
    if recent + body.len() as i64 > VISITOR_DAILY_UPLOAD_BYTES {
        return Err(ApiError::TooManyUploads);
    }
    let data_dir = app.cfg().storage.data_dir.clone();
    if free_bytes(&data_dir)
        .is_some_and(|free| free < UPLOAD_DISK_RESERVE_BYTES + body.len() as u64)
    {
        tracing::warn!("refusing an upload: free disk space is down to the journal's reserve");
        return Err(ApiError::Full);
    }
    let (file_id, bytes) = (id.clone(), body.len());
    tokio::task::spawn_blocking(move || store_upload(&dir, &file_id, &body))
        .await
        .map_err(|_| ApiError::Internal("upload writer panicked".into()))?
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOSPC) {
                ApiError::Full
            } else {
                ApiError::Internal(format!("storing an upload: {e}"))
            }
        })?;
    let (row_id, owner) = (id.clone(), visitor.to_string());
    app.reads
        .run(move |c| {
            Ok::<_, crate::store::Error>(c.execute(
                "INSERT OR IGNORE INTO uploads (id, visitor, bytes, created_at) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![row_id, owner, bytes as i64, crate::model::now_ms()],
            )?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "upload": id })),
    ))
}

/// Writes `bytes` as `dir/id` durably (temporary file, fsync, rename, directory fsync); an
/// existing file with that id has the same content already.
fn store_upload(dir: &std::path::Path, id: &str, bytes: &[u8]) -> std::io::Result<()> {
    static TEMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let path = dir.join(id);
    if path.exists() {
        return Ok(());
    }
    // A temporary name of its own: two uploads of the same bytes never share an inode, so the
    // name `id` only ever appears complete.
    let seq = TEMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{id}.{}-{seq}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

async fn serve_upload(
    app: &AppState,
    id: String,
    visitor: Option<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !is_upload_id(&id) {
        return Err(ApiError::NotFound("no such upload".into()));
    }
    let (check_id, who) = (id.clone(), visitor.clone());
    let known = app
        .reads
        .run(move |c| queries::upload_exists(c, &check_id, who.as_deref()))
        .await?;
    if !known {
        return Err(ApiError::NotFound("no such upload".into()));
    }
    let path = app.cfg().storage.data_dir.join("uploads").join(&id);
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .map_err(|_| ApiError::Internal("upload reader panicked".into()))?
        .map_err(|_| ApiError::NotFound("no such upload".into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type_of(&id)),
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    ))
}

async fn visitor_upload(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<VisitorQuery>,
) -> Result<impl IntoResponse, ApiError> {
    serve_upload(&app, id, Some(q.visitor_id)).await
}

async fn agent_upload(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    serve_upload(&app, id, None).await
}

/// Bytes available to this process on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a zeroed statvfs struct the call fills in.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_by_content() {
        assert_eq!(
            sniff_image(b"\x89PNG\r\n\x1a\n...."),
            Some(("png", "image/png"))
        );
        assert_eq!(
            sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(("jpg", "image/jpeg"))
        );
        assert_eq!(sniff_image(b"GIF89a..."), Some(("gif", "image/gif")));
        assert_eq!(
            sniff_image(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some(("webp", "image/webp"))
        );
        assert_eq!(sniff_image(b"<svg onload=alert(1)>"), None);
        assert_eq!(sniff_image(b"%PDF-1.7"), None);
        assert_eq!(sniff_image(b""), None);
    }
}
