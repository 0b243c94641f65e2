//! HTTP surface: the router, shared state, the JSON error type and the extractors.
//!
//! Every handler answers errors as `{"code": "...", "message": "..."}` with a status chosen per
//! [`ApiError`] variant; internal details are logged, never sent. Numeric ids in paths, queries
//! and bodies are [`crate::model::CheckedId`]s: one out of range is refused with `bad_id`.
//! Handlers never block: store reads go through the read pool, commands through the
//! dispatcher's bounded channel.
//!
//! From the shutdown on, every request but `/healthz` is refused with 503; `/healthz` answers
//! 503 too, saying why (a latched journal, a failed store, or an ordinary stop).

pub mod agent_api;
pub mod agent_ws;
pub mod backup_api;
pub mod channels_api;
pub mod cluster_api;
pub mod console_api;
mod error;
mod extract;
pub mod hours_api;
pub mod inbox_api;
pub mod labels_api;
pub mod listener;
pub mod pwa;
pub mod qr_api;
pub mod ratings_report;
pub mod report_csv;
pub mod reports_api;
pub mod routing_api;
pub mod tls_api;
pub mod update_api;
pub mod uploads;
pub mod visitor_api;
pub mod visitor_ws;
pub mod web;
pub mod wechat;

pub(crate) use error::refused;
pub use error::ApiError;
pub use extract::{bearer_token, origin_allowed, ApiJson, ApiPath, ApiQuery, Authed};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::{mpsc, watch};

use crate::store::progress::Progress;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::dispatch::{Accepted, Command, Reply};
use crate::fanout::{FanoutHandle, FanoutStats};
use crate::model::Lsn;
use crate::store::pool::ReadPool;

/// What every handler and connection task shares: one reference-counted [`Shared`], so a
/// clone (axum clones it per request, a connection keeps one for life) is one pointer.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles behind [`AppState`].
pub struct Shared {
    /// The running configuration; a reload (SIGHUP) publishes a new one. Read it with
    /// [`AppState::cfg`].
    pub config: watch::Receiver<Arc<Config>>,
    pub commands: mpsc::Sender<Command>,
    /// The knowledge base as of the last change (published by the dispatcher).
    pub kb: watch::Receiver<Arc<crate::routing::knowledge::KnowledgeBase>>,
    /// The journal's durable LSN: the ack point.
    pub durable: watch::Receiver<Lsn>,
    /// How far the store has got: reads wait on (and ask for) it for read-your-writes.
    pub store: Arc<Progress>,
    pub fanout: FanoutHandle,
    pub fanout_stats: Arc<FanoutStats>,
    pub dispatch_stats: Arc<crate::dispatch::DispatchStats>,
    pub listener_stats: Arc<listener::ListenerStats>,
    pub journal_health: Arc<crate::journal::writer::Health>,
    /// Set when the store applier failed: why.
    pub store_failure: Arc<std::sync::OnceLock<String>>,
    pub reads: ReadPool,
    /// The channel adapters (MQTT, ...), for their state.
    pub channels: Arc<crate::channel::runtime::Channels>,
    /// WeChat calls already taken (replay protection).
    pub wechat_nonces: Arc<wechat::SeenNonces>,
    pub login: Arc<crate::login::LoginGuard>,
    /// Bumped whenever tokens may have been revoked (logout, password reset, an agent
    /// disabled): open agent feeds re-check their token.
    pub auth_changes: Arc<watch::Sender<u64>>,
    /// Cancelled when the daemon starts shutting down.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them to close cleanly.
    pub tracker: TaskTracker,
    /// This box's node id (`cluster::node`).
    pub node: u64,
    /// The cluster link's view and counters, in cluster mode.
    pub cluster: Option<Arc<crate::cluster::stats::ClusterStats>>,
    /// HTTPS: its certificates and where it listens (`tls_api`).
    pub tls: Arc<crate::tls::Service>,
}

impl AppState {
    /// Tells open agent feeds to re-check their tokens.
    pub fn tokens_changed(&self) {
        self.auth_changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The configuration as of now. Connections take it once, when they open.
    pub fn cfg(&self) -> Arc<Config> {
        Arc::clone(&self.config.borrow())
    }

    /// Sends one command to the dispatcher and waits until its record is durable: how every
    /// HTTP handler that changes something gets the answer it may acknowledge.
    ///
    /// # Errors
    /// The dispatcher's refusal, or [`ApiError::Unavailable`] if the daemon is stopping.
    pub async fn dispatch(
        &self,
        make: impl FnOnce(Reply) -> Command,
    ) -> Result<Accepted, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands
            .send(make(Reply::Once(tx)))
            .await
            .map_err(|_| ApiError::Unavailable)?;
        let accepted = rx.await.map_err(|_| ApiError::Unavailable)??;
        self.wait_durable(accepted.lsn).await?;
        Ok(accepted)
    }

    /// Waits until `lsn` is durable.
    ///
    /// # Errors
    /// [`ApiError::Unavailable`] if the journal stopped (latched or shut down) first.
    pub async fn wait_durable(&self, lsn: Lsn) -> Result<(), ApiError> {
        let mut rx = self.durable.clone();
        rx.wait_for(|d| *d >= lsn)
            .await
            .map(|_| ())
            .map_err(|_| ApiError::Unavailable)
    }

    /// Waits until the store has applied everything durable now, so a read sees every write
    /// this caller was acknowledged for.
    ///
    /// # Errors
    /// [`ApiError::Unavailable`] if the store stopped or lags more than 10 s.
    pub async fn wait_store_current(&self) -> Result<(), ApiError> {
        let target = *self.durable.borrow();
        self.wait_applied(target).await
    }

    /// # Errors
    /// As [`AppState::wait_store_current`].
    pub async fn wait_applied(&self, lsn: Lsn) -> Result<(), ApiError> {
        if self.store.reach(lsn, Duration::from_secs(10)).await {
            Ok(())
        } else {
            Err(ApiError::Unavailable)
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws/visitor", get(visitor_ws::upgrade))
        .route("/ws/agent", get(agent_ws::upgrade))
        .nest(
            "/api/v1",
            agent_api::router()
                .merge(routing_api::router())
                .merge(reports_api::router())
                .merge(console_api::router())
                .merge(uploads::router())
                .merge(inbox_api::router())
                .merge(channels_api::router())
                .merge(backup_api::router())
                .merge(cluster_api::router())
                .merge(update_api::router())
                .merge(labels_api::router())
                .merge(visitor_api::router())
                .merge(ratings_report::router())
                .merge(qr_api::router())
                .merge(hours_api::router()),
        )
        .merge(wechat::router())
        .merge(web::router())
        .merge(tls_api::router())
        .merge(pwa::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            tls_api::redirect_console,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_while_stopping,
        ))
        .with_state(state)
}

/// From the shutdown on, nothing new is taken: only `/healthz` is answered.
async fn refuse_while_stopping(
    axum::extract::State(app): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if app.shutdown.is_cancelled() && req.uri().path() != "/healthz" {
        return ApiError::Unavailable.into_response();
    }
    next.run(req).await
}

async fn healthz(axum::extract::State(app): axum::extract::State<AppState>) -> Response {
    let (status, mut body) = health(
        app.journal_health.failure(),
        app.store_failure.get().map(String::as_str),
        app.shutdown.is_cancelled(),
    );
    body["node"] = crate::cluster::node::display(app.node).into();
    if let Some(cluster) = &app.cluster {
        body["cluster_in_sync"] = cluster.view().in_sync.into();
    }
    if let Some(https) = app.tls.https_addr() {
        body["https_port"] = https.port().into();
    }
    (status, Json(body)).into_response()
}

/// The `/healthz` answer: 200 while running; 503 with the reason once the journal latched or
/// the store failed, or while stopping. Pure.
fn health(
    journal_failure: Option<&str>,
    store_failure: Option<&str>,
    stopping: bool,
) -> (StatusCode, serde_json::Value) {
    match (journal_failure.or(store_failure), stopping) {
        (Some(reason), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "failed", "reason": reason}),
        ),
        (None, true) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "stopping", "reason": "shutting down"}),
        ),
        (None, false) => (StatusCode::OK, serde_json::json!({"status": "ok"})),
    }
}

/// Prometheus text format; loopback and LAN only, like everything else here.
///
/// One piece on purpose: a flat table of every figure kefud exposes (name, help, value), so
/// the list of metrics is read in one place.
async fn metrics(axum::extract::State(app): axum::extract::State<AppState>) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let rows = [
        (
            "kefud_journal_committed_total",
            "Records made durable since start.",
            app.journal_health.committed(),
        ),
        (
            "kefud_journal_batches_total",
            "Group commits: one write and one fdatasync each.",
            app.journal_health.batches(),
        ),
        (
            "kefud_journal_bytes_total",
            "Bytes the journal wrote (frames, not counting segment headers).",
            app.journal_health.bytes(),
        ),
        (
            "kefud_journal_fsyncs_total",
            "fsync and fdatasync calls the journal made (commits, rotations, retirements).",
            app.journal_health.fsyncs(),
        ),
        (
            "kefud_journal_durable_lsn",
            "Last durable log sequence number.",
            *app.durable.borrow(),
        ),
        (
            "kefud_store_applied_lsn",
            "Last LSN committed to SQLite (visible to reads; durable once checkpointed).",
            app.store.applied(),
        ),
        (
            "kefud_store_checkpointed_lsn",
            "Last LSN durable in kefud.db; the journal keeps everything after it.",
            app.store.checkpointed(),
        ),
        (
            "kefud_store_commits_total",
            "SQLite transactions the store applier committed (no fsync each).",
            app.store.counters.commits.load(Relaxed),
        ),
        (
            "kefud_store_checkpoints_total",
            "SQLite checkpoints (two fsyncs each: the WAL, then kefud.db).",
            app.store.counters.checkpoints.load(Relaxed),
        ),
        (
            "kefud_store_wal_pages_total",
            "Pages the store applier wrote to SQLite's WAL.",
            app.store.counters.pages_written.load(Relaxed),
        ),
        (
            "kefud_fanout_delivered_total",
            "Frames handed to live connections.",
            app.fanout_stats.delivered.load(Relaxed),
        ),
        (
            "kefud_fanout_lagged_total",
            "Live connections dropped for falling behind.",
            app.fanout_stats.lagged.load(Relaxed),
        ),
        (
            "kefud_connections_refused_total",
            "Connections closed at once for being over a connection cap.",
            app.listener_stats.refused.load(Relaxed),
        ),
        (
            "kefud_accept_errors_total",
            "Failed accepts (out of descriptors or memory); the server retried.",
            app.listener_stats.accept_errors.load(Relaxed),
        ),
        (
            "kefud_connections_open",
            "Open HTTP and WebSocket connections.",
            app.listener_stats.open.load(Relaxed),
        ),
        (
            "kefud_dispatcher_contacts",
            "Contacts the dispatcher holds in memory (conversations.cached_contacts at most).",
            app.dispatch_stats.contacts.load(Relaxed),
        ),
        (
            "kefud_dispatcher_queued_in_memory",
            "Waiting conversations held in memory (the rest of the queue is in the store).",
            app.dispatch_stats.queued_in_memory.load(Relaxed),
        ),
        (
            "kefud_dispatcher_cluster_entries",
            "Cluster mode: names, customer tips, floors and holders of conversations not closed, and contacts' register versions not yet in the store, held in memory.",
            app.dispatch_stats.cluster_entries.load(Relaxed),
        ),
        (
            "kefud_clock_synchronized",
            "1 while the system says its clock is synchronised (NTP set it).",
            u64::from(crate::clock::synchronized()),
        ),
        (
            "kefud_clock_steps_total",
            "Steps of the wall clock seen since start (timers ignore them; stored times follow).",
            crate::clock::steps(),
        ),
        (
            "kefud_heap_allocations_total",
            "Heap allocations since start.",
            crate::alloc_count::allocations(),
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in rows {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    }
    let channels = app.channels.status();
    if !channels.is_empty() {
        out.push_str("# HELP kefud_channel_events_total Channel adapters' counters (see GET /api/v1/channels).\n# TYPE kefud_channel_events_total counter\n");
        for c in &channels {
            for (event, value) in &c.counters {
                out.push_str(&format!(
                    "kefud_channel_events_total{{adapter=\"{}\",event=\"{event}\"}} {value}\n",
                    c.name
                ));
            }
        }
        out.push_str("# HELP kefud_channel_connected Whether a channel adapter is connected.\n# TYPE kefud_channel_connected gauge\n");
        for c in &channels {
            out.push_str(&format!(
                "kefud_channel_connected{{adapter=\"{}\"}} {}\n",
                c.name,
                u8::from(matches!(c.state, "connected" | "stalled"))
            ));
        }
        out.push_str("# HELP kefud_channel_stalled Whether a channel adapter's acknowledgements have fallen behind what it stored.\n# TYPE kefud_channel_stalled gauge\n");
        for c in &channels {
            out.push_str(&format!(
                "kefud_channel_stalled{{adapter=\"{}\"}} {}\n",
                c.name,
                u8::from(c.state == "stalled")
            ));
        }
    }
    out
}

#[cfg(test)]
mod health_tests {
    use super::*;

    #[test]
    fn healthz_says_why_it_is_unhealthy() {
        assert_eq!(health(None, None, false).0, StatusCode::OK);
        let (status, body) = health(None, None, true);
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("stopping"))
        );
        let (status, body) = health(Some("read-only"), Some("store"), true);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["reason"], "read-only");
        assert_eq!(health(None, Some("store"), false).1["reason"], "store");
    }
}
