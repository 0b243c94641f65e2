//! `/api/v1/update` (admins only): what runs, what a rollback would go back to, how the last
//! update went; uploading a signed bundle; asking for a rollback.
//!
//! kefud is unprivileged: it checks an uploaded bundle (so an admin hears at once why one is
//! refused), puts it in `pending.kefu` in `update.spool_dir` (written to a temporary name,
//! fsync'd, renamed) and leaves the rest to the root helper `kefud-update`, which systemd starts when
//! that file appears, checks the bundle again with the packaged key, installs it, and rolls
//! back by itself if the new kefud does not become ready. A rollback request is the file
//! `rollback-requested` there. One upload at a time ([`IN_PROGRESS`]); while a bundle or a
//! request waits for the helper, another is refused.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::json;

use super::routing_api::require_admin;
use super::{ApiError, AppState, Authed};
use crate::update::{self, bundle, key::PublicKey};

/// The largest bundle taken (a .deb per architecture is a few MiB).
pub const MAX_BUNDLE_BYTES: u64 = 128 * 1024 * 1024;

/// Set while an upload is being received or checked.
static IN_PROGRESS: AtomicBool = AtomicBool::new(false);

/// Holds [`IN_PROGRESS`]; clears it when dropped, wherever the upload ends.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        IN_PROGRESS
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        IN_PROGRESS.store(false, Ordering::Release);
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/update",
            get(status)
                .post(upload)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/update/rollback", post(rollback))
}

fn spool(app: &AppState) -> PathBuf {
    app.cfg().update.spool_dir.clone()
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

async fn status(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&agent)?;
    let key_path = app.cfg().update.public_key.clone();
    let key = std::fs::read_to_string(&key_path)
        .ok()
        .and_then(|t| PublicKey::parse(&t).ok())
        .map(|k| k.fingerprint());
    let last: Option<serde_json::Value> = std::fs::read(update::HELPER_STATUS)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let dir = spool(&app);
    Ok(Json(json!({
        "running": env!("CARGO_PKG_VERSION"),
        "architecture": bundle::this_architecture(),
        "previous": read_trimmed(update::PREVIOUS_VERSION),
        "key": key,
        "pending": dir.join(update::PENDING).exists(),
        "rollback_requested": dir.join(update::ROLLBACK_REQUESTED).exists(),
        "last": last,
    })))
}

/// Refuses while the helper has not taken the previous hand-over.
fn nothing_waiting(dir: &Path) -> Result<(), ApiError> {
    if dir.join(update::PENDING).exists() || dir.join(update::ROLLBACK_REQUESTED).exists() {
        return Err(ApiError::Exists(
            "update_waiting",
            "an update or a rollback is waiting to be carried out; try again when it is done"
                .into(),
        ));
    }
    Ok(())
}

fn io_error(e: &std::io::Error) -> ApiError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        ApiError::Full
    } else {
        ApiError::Internal(format!("update spool: {e}"))
    }
}

async fn upload(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&agent)?;
    let _slot = Slot::take().ok_or(ApiError::Exists(
        "update_busy",
        "another bundle is being uploaded".into(),
    ))?;
    let dir = spool(&app);
    nothing_waiting(&dir)?;
    let key_path = app.cfg().update.public_key.clone();
    let no_key = |why: String| ApiError::Unprocessable {
        code: "no_update_key",
        message: format!(
            "this kefud has no update key ({}: {why}): it was packaged without one, so it is \
             updated with dpkg instead",
            key_path.display()
        ),
    };
    let key = match std::fs::read_to_string(&key_path) {
        Ok(text) if text.trim().is_empty() => return Err(no_key("empty".into())),
        Ok(text) => PublicKey::parse(&text).map_err(|e| ApiError::Unprocessable {
            code: "no_update_key",
            message: format!("{}: {e}", key_path.display()),
        })?,
        Err(e) => return Err(no_key(e.to_string())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&e))?;
    let partial = dir.join("upload.partial");

    // The body goes to a file through a small queue to a blocking writer.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(8);
    let writer = {
        let partial = partial.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&partial)?;
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
            }
            file.sync_all()
        })
    };
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(ApiError::bad_request(
                    "upload_interrupted",
                    format!("the upload was interrupted: {e}"),
                ));
                break;
            }
        };
        received += chunk.len() as u64;
        if received > MAX_BUNDLE_BYTES {
            failure = Some(ApiError::PayloadTooLarge(format!(
                "an update bundle may have at most {MAX_BUNDLE_BYTES} bytes"
            )));
            break;
        }
        if tx.send(chunk).await.is_err() {
            break;
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|_| ApiError::Internal("the upload writer panicked".into()))?;
    if let Some(e) = failure.or(written.err().map(|e| io_error(&e))) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }

    let checked = {
        let (partial, dir) = (partial.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let v = update::open_file(
                &partial,
                &key,
                env!("CARGO_PKG_VERSION"),
                bundle::this_architecture(),
                None,
            )?;
            std::fs::rename(&partial, dir.join(update::PENDING))
                .and_then(|()| std::fs::File::open(&dir)?.sync_all())
                .map_err(|e| update::UpdateError::Io("update spool".into(), e))?;
            Ok::<_, update::UpdateError>(v)
        })
        .await
        .map_err(|_| ApiError::Internal("the bundle check panicked".into()))?
    };
    match checked {
        Ok(v) => {
            tracing::info!(
                version = %v.manifest.version,
                by = %agent.username,
                "update bundle accepted; the root helper installs it"
            );
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({
                    "version": v.manifest.version,
                    "package": v.package.file,
                    "state": "pending",
                })),
            ))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(match e {
                update::UpdateError::Refused(r) => ApiError::Unprocessable {
                    code: "bundle_refused",
                    message: r.to_string(),
                },
                update::UpdateError::Io(_, io) => io_error(&io),
                other => ApiError::Internal(other.to_string()),
            })
        }
    }
}

async fn rollback(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&agent)?;
    let Some(previous) = read_trimmed(update::PREVIOUS_VERSION) else {
        return Err(ApiError::Exists(
            "no_previous_version",
            "no previous version is kept: only an update keeps one, and a rollback uses it up"
                .into(),
        ));
    };
    let dir = spool(&app);
    nothing_waiting(&dir)?;
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&e))?;
    std::fs::File::create(dir.join(update::ROLLBACK_REQUESTED))
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::File::open(&dir)?.sync_all())
        .map_err(|e| io_error(&e))?;
    tracing::info!(to = %previous, by = %agent.username, "rollback requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "to": previous, "state": "requested" })),
    ))
}
