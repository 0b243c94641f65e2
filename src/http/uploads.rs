//! The images customers send: a file is stored under `data_dir/uploads/` named by the SHA-256 of its content
//! and an extension chosen from its first bytes (PNG, JPEG, GIF, WebP; anything else is
//! refused whatever its declared type), written to a temporary file, fsync'd and renamed, so a
//! message never refers to half a file. Agents read uploads with their token; a visitor only
//! their own. Uploads are anonymous (the widget's visitors), so they are bounded: 5 MiB each;
//! per day per visitor id, per address (the id is the client's choice, the address is not)
//! and for everyone together (`[uploads]`); never into the last 256 MiB of free disk, which
//! belong to the journal; and an upload no message refers to is deleted after
//! `uploads.orphan_after_secs` ([`sweep_orphan_uploads`]).

use std::io::Write;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ApiError, ApiPath, ApiQuery, AppState, Authed};
use crate::store::queries;
use crate::wire::is_upload_id;

/// Largest image a customer may send.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// Free space uploads never take: it stays for the journal and the store (the messages
/// themselves), whatever anonymous visitors send.
pub const UPLOAD_DISK_RESERVE_BYTES: u64 = 256 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/visitor/uploads",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1024)),
        )
        .route("/visitor/uploads/{id}", get(visitor_upload))
        .route("/uploads/{id}", get(agent_upload))
}

#[derive(Deserialize)]
struct VisitorQuery {
    /// `visitor_id`, or a signed identity (`visitor_api.rs`): a signed customer's uploads are
    /// theirs only with the signature.
    #[serde(flatten)]
    creds: super::visitor_api::VisitorCredentials,
}

impl VisitorQuery {
    /// The customer's external id on the web channel, checked as the WebSocket checks it.
    async fn visitor(&self, app: &AppState) -> Result<String, ApiError> {
        let (identity, _) = super::visitor_api::visitor_identity(app, &self.creds)
            .await?
            .ok_or_else(|| ApiError::bad_request("bad_visitor_id", "visitor_id is required"))?;
        Ok(identity.external_id.to_string())
    }
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

/// Bytes uploaded in the last 24 hours by this visitor id, from this address, and by all.
#[derive(Debug, Clone, Copy)]
struct UploadUse {
    visitor: u64,
    address: u64,
    total: u64,
}

/// Whether `size` more bytes fit every daily quota.
fn within_quota(used: UploadUse, size: u64, quotas: &crate::config::Uploads) -> bool {
    const MIB: u64 = 1024 * 1024;
    used.visitor + size <= quotas.per_visitor_daily_mib * MIB
        && used.address + size <= quotas.per_address_daily_mib * MIB
        && used.total + size <= quotas.total_daily_mib * MIB
}

/// The address as the quota sees it: IPv4 whole, IPv6 by its /64; "" for the box itself
/// (a proxy on the box makes every visitor look alike: only the other quotas apply).
fn quota_address(ip: std::net::IpAddr) -> String {
    use std::net::IpAddr;
    match ip {
        ip if ip.is_loopback() && (ip == IpAddr::from([127, 0, 0, 1]) || ip.is_ipv6()) => {
            String::new()
        }
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(|v4| v4.to_string())
            .unwrap_or_default(),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

async fn upload(
    State(app): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    ApiQuery(q): ApiQuery<VisitorQuery>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let visitor = q.visitor(&app).await?;
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
    let address = quota_address(peer.ip());
    let (who, from, since) = (
        visitor.to_string(),
        address.clone(),
        crate::model::now_ms() - 86_400_000,
    );
    let used = app
        .reads
        .run(move |c| {
            Ok::<_, crate::store::Error>(c.query_row(
                "SELECT COALESCE(SUM(CASE WHEN visitor = ?1 THEN bytes END), 0),
                        COALESCE(SUM(CASE WHEN address = ?2 AND ?2 != '' THEN bytes END), 0),
                        COALESCE(SUM(bytes), 0)
                 FROM uploads WHERE created_at > ?3",
                rusqlite::params![who, from, since],
                |r| {
                    Ok(UploadUse {
                        visitor: r.get::<_, i64>(0)? as u64,
                        address: r.get::<_, i64>(1)? as u64,
                        total: r.get::<_, i64>(2)? as u64,
                    })
                },
            )?)
        })
        .await?;
    if !within_quota(used, body.len() as u64, &app.cfg().uploads) {
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
                "INSERT OR IGNORE INTO uploads (id, visitor, bytes, created_at, address) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![row_id, owner, bytes as i64, crate::model::now_ms(), address],
            )?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "upload": id })),
    ))
}

/// Deletes uploads that no message refers to `orphan_after` after they came: their rows,
/// then each file (or leftover temporary file) older than that which no row and no message
/// names. Returns how many files were deleted.
///
/// # Errors
/// A store failure; a file that cannot be deleted is logged and tried again next time.
pub async fn sweep_orphan_uploads(
    app: &AppState,
    orphan_after: std::time::Duration,
) -> Result<usize, ApiError> {
    // Every message acknowledged so far must be in the store, or an upload it names (sent
    // just now, uploaded long ago) would look like an orphan.
    app.wait_store_current().await?;
    let before = crate::model::now_ms() - orphan_after.as_millis() as i64;
    app.reads
        .run(move |c| {
            c.execute(
                "DELETE FROM uploads WHERE created_at < ?1
                 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.attachment = uploads.id)",
                [before],
            )?;
            Ok::<_, crate::store::Error>(())
        })
        .await?;
    let dir = app.cfg().storage.data_dir.join("uploads");
    let reads = app.reads.clone();
    let named: std::collections::HashSet<String> = reads
        .run(|c| {
            let mut stmt = c.prepare("SELECT id FROM uploads UNION SELECT attachment FROM messages WHERE attachment IS NOT NULL")?;
            let ids = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok::<_, crate::store::Error>(ids.collect::<Result<_, _>>()?)
        })
        .await?;
    let cutoff = std::time::SystemTime::now() - orphan_after;
    tokio::task::spawn_blocking(move || {
        let mut deleted = 0;
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if !old || named.contains(&name) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "cannot delete an orphan upload")
                }
            }
        }
        deleted
    })
    .await
    .map_err(|_| ApiError::Internal("upload sweeper panicked".into()))
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
    let visitor = q.visitor(&app).await?;
    serve_upload(&app, id, Some(visitor)).await
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
    fn upload_quotas_hold_per_visitor_address_and_in_total() {
        let q = crate::config::Uploads {
            per_visitor_daily_mib: 2,
            per_address_daily_mib: 3,
            total_daily_mib: 4,
            orphan_after_secs: 3600,
        };
        const M: u64 = 1024 * 1024;
        let used = |visitor, address, total| UploadUse {
            visitor,
            address,
            total,
        };
        assert!(within_quota(used(M, M, M), M, &q));
        assert!(!within_quota(used(M + 1, M, M), M, &q));
        // A fresh visitor id does not escape the address's quota, nor the total.
        assert!(!within_quota(used(0, 3 * M, 3 * M), 1, &q));
        assert!(!within_quota(used(0, 0, 4 * M), 1, &q));
    }

    #[test]
    fn quota_addresses() {
        let a = |s: &str| quota_address(s.parse().unwrap());
        assert_eq!(a("127.0.0.1"), "");
        assert_eq!(a("::1"), "");
        assert_eq!(a("127.0.0.2"), "127.0.0.2");
        assert_eq!(a("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(a("::ffff:192.0.2.1"), "192.0.2.1");
    }

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
