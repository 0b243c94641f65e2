//! `GET /api/v1/backup` (admins only): a backup taken now (`backup::create`, consistent while
//! the daemon runs), streamed as a tar archive whose entries sit under one directory
//! `kefud-backup-{UTC time}/`, the manifest first. Extract it and `kefud restore` that
//! directory.
//!
//! The backup is first written to `data_dir/backup-download/` (SQLite's backup needs a file),
//! then streamed from there by a blocking thread through a small bounded channel, and deleted
//! once sent or once the client goes away. One download runs at a time ([`IN_PROGRESS`]);
//! another meanwhile gets `503 busy`. A leftover from a crash is deleted by the next download.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::routing_api::require_admin;
use super::{ApiError, AppState, Authed};
use crate::backup;

/// Where a download's backup is written, inside the data directory.
const WORK_DIR: &str = "backup-download";

/// Set while a download is being prepared or streamed.
static IN_PROGRESS: AtomicBool = AtomicBool::new(false);

/// Holds [`IN_PROGRESS`]; clears it when dropped, wherever the download ends.
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
    Router::new().route("/backup", get(download))
}

async fn download(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
) -> Result<Response, ApiError> {
    require_admin(&agent)?;
    let slot = Slot::take().ok_or(ApiError::Busy)?;
    let cfg = app.cfg();
    let data_dir = cfg.storage.data_dir.clone();
    let work = data_dir.join(WORK_DIR);
    let name = backup::schedule::backup_name(crate::model::now_ms());
    let dir = work.join(&name);
    // The slot travels with the work: a client that leaves early does not free it before
    // the blocking thread is done with the directory.
    let (slot, made) = {
        let (work, dir) = (work.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let cleared = match std::fs::remove_dir_all(&work) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            };
            let made =
                cleared.and_then(|()| backup::create(&data_dir, &dir).map_err(|e| e.to_string()));
            (slot, made)
        })
        .await
        .map_err(|_| ApiError::Internal("the backup worker panicked".into()))?
    };
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&work);
        return Err(ApiError::Internal(format!("backup failed: {e}")));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let top = name.clone();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let sent = backup::write_tar(&dir, &top, |chunk| {
            tx.blocking_send(Ok(Bytes::copy_from_slice(chunk)))
                .map_err(|_| std::io::Error::other("the client went away"))
        });
        if let Err(e) = sent {
            tracing::warn!(error = %e, "backup download ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        if let Err(e) = std::fs::remove_dir_all(&work) {
            tracing::warn!(error = %e, path = %work.display(), "cannot delete a downloaded backup");
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.tar\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
