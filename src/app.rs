//! Wiring: startup order, shutdown order. The only place that starts threads and tasks.
//! Files: `recovery.rs` (the data directory's lock, journal recovery and replay),
//! `housekeeping.rs` (the periodic tasks), `host.rs` (the open-files limit).
//!
//! Startup: data directory → store opened and migrated → journal recovered and the store
//! caught up from it → journal writer, store applier, dispatcher threads and the fan-out task
//! → HTTPS certificates loaded (made at the first start) → listeners bound (HTTP, then HTTPS,
//! whose failure is logged and does not stop the daemon) → `READY=1`.
//!
//! Shutdown (the `shutdown` token): `STOPPING=1` → refuse new requests (503; the listener
//! stays open for `/healthz`, which says why) → connection tasks finish their in-flight acks
//! and close with 1001 (within `server.shutdown_grace_secs`) → channel adapters stop (within
//! `channel::runtime::STOP_DEADLINE`) → the command channel closes, so the dispatcher stops →
//! the journal writer sees its channel close after its last fsync → fan-out drains → the store
//! applies the rest → threads joined → listener closed. A journal I/O error cancels `fatal`, which
//! starts the same shutdown and makes `run` return [`Error::JournalLatched`]; a store write
//! failure does the same with [`Error::StoreFailed`].
//!
//! Pipeline, every hop bounded:
//! ```text
//! connections ─Command─▶ dispatcher ─Entry─▶ journal writer ─durable LSN (watch)─▶ acks
//!                                                 └─batch─▶ fan-out ─frames─▶ connections
//!                                                              └─batch─▶ store applier
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channel::{self, runtime::Channels};
use crate::config::Config;
use crate::dispatch::{ClusterRole, Command, DispatchConfig, Dispatcher};
use crate::error::{Error, Result};
use crate::fanout::Fanout;
use crate::http::{self, AppState};
use crate::journal::{self, writer::KeepForRollback, writer::Writer, writer::WriterConfig};
use crate::login::LoginGuard;
use crate::op::Op;
use crate::reload::{self, Reloader};
use crate::store::{self, applier::Applier, pool::ReadPool, progress::Progress};
use crate::systemd;

mod host;
mod housekeeping;
mod recovery;

use host::fd_limit;
pub use host::raise_fd_limit;
use housekeeping::{scheduled_backups, sweep_uploads, tick_idle_timeouts};
pub(crate) use recovery::DataDirLock;
use recovery::{recover, Recovered};

/// SQLite read connections open at once (requests beyond wait their turn).
const READ_CONNECTIONS: usize = 8;

/// The pipeline without the network: the data directory locked, the store and journal
/// recovered, and the journal writer, store applier, dispatcher and fan-out running. The daemon
/// serves HTTP on top of it; `kefud kb import` uses it alone to journal a change.
/// Committed batches each pipeline stage after the journal may hold (see [`Core::start`]).
const PIPELINE_BATCHES: usize = 64;

pub struct Core {
    pub commands: mpsc::Sender<Command>,
    pub durable: tokio::sync::watch::Receiver<u64>,
    /// How far the store has applied and checkpointed the journal.
    pub store: Arc<Progress>,
    pub kb: tokio::sync::watch::Receiver<Arc<crate::routing::knowledge::KnowledgeBase>>,
    pub fanout: crate::fanout::FanoutHandle,
    pub fanout_stats: Arc<crate::fanout::FanoutStats>,
    pub dispatch_stats: Arc<crate::dispatch::DispatchStats>,
    pub journal_health: Arc<journal::writer::Health>,
    /// Cancelled when the journal latches or the store fails.
    pub fatal: CancellationToken,
    /// Set when the store applier fails: why (the journal's reason is in `journal_health`).
    pub store_failure: Arc<OnceLock<String>>,
    /// This box's node id (made at the first start).
    pub node: crate::cluster::vector::NodeId,
    /// In cluster mode, this node's committed cluster operations, for the link to publish,
    /// and the last of its seqs that is durable.
    pub cluster_ops: Option<(
        mpsc::Receiver<Vec<crate::cluster::wire::Operation>>,
        tokio::sync::watch::Receiver<u64>,
    )>,
    threads: [JoinHandle<()>; 3],
    tasks: TaskTracker,
    stop_tasks: CancellationToken,
    _lock: DataDirLock,
}

impl Core {
    /// Locks the data directory, recovers, and starts the pipeline.
    ///
    /// One piece on purpose: the pipeline's channels are wired here, each to the one thread or
    /// task at its other end, and seeing them together is how the wiring is checked.
    ///
    /// # Errors
    /// [`Error`] when the data directory is unusable or in use, or recovery fails.
    pub async fn start(cfg: &Arc<Config>) -> Result<Core> {
        let lock = DataDirLock::acquire(&cfg.storage.data_dir)?;
        let recovered = {
            let cfg = Arc::clone(cfg);
            tokio::task::spawn_blocking(move || recover(&cfg))
                .await
                .map_err(|_| Error::Worker("recovery"))??
        };
        let Recovered {
            applier,
            journal: rec,
        } = recovered;
        let progress = applier.progress();
        tracing::info!(
            last_lsn = rec.last_lsn,
            segments = rec.segments.len(),
            truncated_bytes = rec.truncated_bytes,
            "journal recovered; store caught up"
        );

        let fatal = CancellationToken::new();
        let store_failure = Arc::new(OnceLock::new());
        let (journal_tx, journal_rx) = mpsc::channel(cfg.journal.queue_depth);
        // Committed batches waiting for fan-out and for the store: enough that a store busy
        // with a commit or a checkpoint does not hold up acknowledgements (with 8, the p99 ack
        // latency at the maximum rate tripled). A long import bounds its own backlog
        // (`import::sink`), since its batches are large.
        let (committed_tx, committed_rx) = mpsc::channel(PIPELINE_BATCHES);
        let (store_tx, store_rx) = mpsc::channel(PIPELINE_BATCHES);
        let (command_tx, command_rx) = mpsc::channel::<Command>(4096);
        let (kb_tx, kb_rx) = tokio::sync::watch::channel(Arc::default());

        let (writer, durable_rx, journal_health) = Writer::open(
            cfg.journal_dir(),
            WriterConfig {
                segment_bytes: cfg.journal.segment_bytes,
                max_batch_bytes: cfg.journal.max_batch_bytes,
                retain_segments: cfg.journal.retain_segments,
                keep_for_rollback: store::undo::kept_for_rollback(
                    &cfg.db_path(),
                    crate::model::now_ms() as u64,
                )
                .map(|(lsn, until_ms)| KeepForRollback { lsn, until_ms }),
            },
            rec.segments,
            rec.layout,
            rec.tail_len,
            rec.last_lsn,
            committed_tx,
            progress.checkpointed_mark(),
            fatal.clone(),
        )?;
        let node =
            crate::cluster::node::load_or_create(&cfg.storage.data_dir).map_err(Error::NodeId)?;
        let (mut fanout, fanout_handle, fanout_inputs, fanout_stats) =
            Fanout::new(rec.last_lsn, store_tx);
        let cluster_ops = cfg.cluster.enabled.then(|| {
            let (ops, rx) = mpsc::channel(256);
            let (durable_seq, seq_rx) = tokio::sync::watch::channel(0);
            fanout.tap_cluster(crate::fanout::ClusterTap {
                node,
                ops,
                durable_seq,
            });
            (rx, seq_rx)
        });
        let dispatcher = Dispatcher::new(
            DispatchConfig {
                resolved_idle_after_ms: cfg.conversations.resolved_idle_after_secs as i64 * 1000,
                recent_client_ids: cfg.conversations.recent_client_ids,
                bot: cfg.routing.bot(),
                auto_assign: cfg.routing.auto_assign,
                cached_contacts: cfg.conversations.cached_contacts,
                cluster: cfg.cluster.enabled.then_some(ClusterRole {
                    node,
                    max_clock_ahead_ms: cfg.cluster.max_clock_ahead_ms,
                }),
            },
            store::connect(&cfg.db_path())?,
            rec.last_lsn,
            Arc::clone(&progress),
            journal_tx,
            kb_tx,
            fanout_handle.clone(),
        )?;
        let dispatch_stats = dispatcher.stats();
        let threads = [
            spawn_thread("kefud-journal", move || writer.run(journal_rx)),
            spawn_store(
                applier,
                store_rx,
                cfg.storage.data_dir.clone(),
                fatal.clone(),
                Arc::clone(&store_failure),
            ),
            spawn_thread("kefud-dispatch", move || dispatcher.run(command_rx)),
        ];
        let tasks = TaskTracker::new();
        let stop_tasks = CancellationToken::new();
        tasks.spawn(fanout.run(committed_rx, fanout_inputs));
        tasks.spawn(tick_idle_timeouts(command_tx.clone(), stop_tasks.clone()));
        Ok(Core {
            commands: command_tx,
            durable: durable_rx,
            store: progress,
            kb: kb_rx,
            fanout: fanout_handle,
            fanout_stats,
            dispatch_stats,
            journal_health,
            fatal,
            store_failure,
            node,
            cluster_ops,
            threads,
            tasks,
            stop_tasks,
            _lock: lock,
        })
    }

    /// Stops the pipeline in order: the dispatcher takes no more commands, the writer syncs
    /// what it holds, fan-out drains, the store applies the rest.
    ///
    /// # Errors
    /// [`Error::StoreFailed`], [`Error::JournalLatched`] or [`Error::Worker`] for a pipeline
    /// that did not stop cleanly.
    pub async fn stop(self) -> Result<()> {
        // Everything accepted so far is in the journal's queue; the writer syncs it and stops.
        let _ = self.commands.send(Command::Stop).await;
        drop(self.commands);
        self.stop_tasks.cancel();
        self.tasks.close();
        let threads = self.threads;
        let joined =
            tokio::task::spawn_blocking(move || threads.into_iter().all(|t| t.join().is_ok()))
                .await
                .unwrap_or(false);
        self.tasks.wait().await;
        if self.store_failure.get().is_some() {
            return Err(Error::StoreFailed);
        }
        if self.fatal.is_cancelled() || self.journal_health.is_latched() {
            return Err(Error::JournalLatched);
        }
        if !joined {
            return Err(Error::Worker("journal, store or dispatcher"));
        }
        tracing::info!(
            committed = self.journal_health.committed(),
            "stopped cleanly; journal synced"
        );
        Ok(())
    }
}

/// The store's applier thread. A failure is fatal (the journal keeps everything, a restart
/// replays it): its reason, with the likely cause when the file system went read-only, is set
/// once in `failure` for `/healthz`, and `fatal` stops the daemon.
fn spawn_store(
    applier: Applier,
    batches: mpsc::Receiver<Vec<crate::op::Entry>>,
    data_dir: std::path::PathBuf,
    fatal: CancellationToken,
    failure: Arc<OnceLock<String>>,
) -> JoinHandle<()> {
    spawn_thread("kefud-store", move || {
        let Err(e) = applier.run(batches) else {
            return;
        };
        // ext4 remounts read-only a moment after the error it reports.
        let read_only = (0..10).any(|_| {
            journal::writer::file_system_read_only(&data_dir) || {
                std::thread::sleep(Duration::from_millis(50));
                false
            }
        });
        let cause = if read_only {
            "; the data directory's file system is read-only (remounted after errors, as ext4 errors=remount-ro does: see dmesg, fsck the card)"
        } else {
            ""
        };
        tracing::error!(error = %e, cause, "store applier failed; stopping (the journal keeps everything and a restart replays it)");
        // Only this thread sets it, once.
        let _ = failure.set(format!(
            "the SQLite store failed to apply committed records: {e}{cause}"
        ));
        fatal.cancel();
    })
}

/// Runs the daemon until `shutdown` is cancelled.
///
/// # Errors
/// [`Error`] when startup fails (damaged journal, unusable data directory, port taken) or the
/// journal latched on an I/O error while running.
pub async fn run(cfg: Config, reloader: Reloader, shutdown: CancellationToken) -> Result<()> {
    run_with_adapters(cfg, reloader, shutdown, Vec::new()).await
}

/// [`run`], with channel adapters of the caller's own besides the ones the configuration
/// enables (an integrator's IM: see `examples/adapter.rs`).
///
/// One piece on purpose: it is the daemon's start and stop order, read top to bottom (the
/// pipeline before the channels, the channels before the listener; on the way down,
/// connections drain before the channels stop, and the channels before the pipeline), and the
/// order is what must not be broken; the steps themselves are functions.
///
/// # Errors
/// As [`run`]; also [`Error::Channels`] when an adapter's channels collide with another's.
pub async fn run_with_adapters(
    cfg: Config,
    reloader: Reloader,
    shutdown: CancellationToken,
    adapters: Vec<Arc<dyn channel::Adapter>>,
) -> Result<()> {
    let cfg = Arc::new(cfg);
    let started = std::time::Instant::now();
    // Installed first: until a handler exists, SIGHUP's default action kills the process.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(Error::Signals)?;
    raise_fd_limit();
    let mut core = Core::start(&cfg).await?;
    let tasks = TaskTracker::new();
    {
        let (fatal, shutdown) = (core.fatal.clone(), shutdown.clone());
        tasks.spawn(async move {
            // Cancel safety: both are `cancelled()` futures.
            tokio::select! {
                _ = fatal.cancelled() => shutdown.cancel(),
                _ = shutdown.cancelled() => {}
            }
        });
    }

    let connections = TaskTracker::new();
    let (config_tx, config_rx) = tokio::sync::watch::channel(Arc::clone(&cfg));
    let reads = ReadPool::new(cfg.db_path(), READ_CONNECTIONS);
    let device_key = match reads.run(crate::store::queries::device_key).await {
        Ok(key) => key,
        Err(e) => {
            let _ = core.stop().await;
            return Err(Error::Store(e));
        }
    };
    let login = Arc::new(LoginGuard::new(
        cfg.auth.login_failures_per_minute,
        device_key,
    ));
    tasks.spawn(reload::run(
        reloader,
        hangups,
        reload::Targets {
            config: config_tx,
            login: Arc::clone(&login),
            commands: core.commands.clone(),
        },
        shutdown.clone(),
    ));
    let channels = match Channels::start(
        &cfg,
        adapters,
        channel::runtime::Pipeline {
            commands: core.commands.clone(),
            durable: core.durable.clone(),
            applied: core.store.subscribe(),
            reads: reads.clone(),
        },
    ) {
        Ok(channels) => Arc::new(channels),
        Err(e) => {
            let _ = core.stop().await;
            return Err(Error::Channels(e));
        }
    };
    let cluster_tasks = TaskTracker::new();
    let stop_cluster = CancellationToken::new();
    let cluster = match core.cluster_ops.take() {
        None => None,
        Some((own_ops, own_durable_seq)) => {
            let pipeline = crate::cluster::link::Pipeline {
                commands: core.commands.clone(),
                durable: core.durable.clone(),
                reads: reads.clone(),
                store: Arc::clone(&core.store),
                own_ops,
                own_durable_seq,
            };
            match crate::cluster::start(
                &cfg,
                core.node,
                pipeline,
                stop_cluster.clone(),
                &cluster_tasks,
            )
            .await
            {
                Ok(stats) => Some(stats),
                Err(e) => {
                    channels.stop().await;
                    let _ = core.stop().await;
                    return Err(Error::Cluster(e));
                }
            }
        }
    };
    let tls = crate::tls::Service::start(&cfg).await;
    let state = AppState::new(http::Shared {
        config: config_rx.clone(),
        kb: core.kb.clone(),
        commands: core.commands.clone(),
        durable: core.durable.clone(),
        store: Arc::clone(&core.store),
        fanout: core.fanout.clone(),
        fanout_stats: Arc::clone(&core.fanout_stats),
        dispatch_stats: Arc::clone(&core.dispatch_stats),
        listener_stats: Arc::default(),
        journal_health: Arc::clone(&core.journal_health),
        store_failure: Arc::clone(&core.store_failure),
        reads,
        channels: Arc::clone(&channels),
        wechat_nonces: Arc::default(),
        login,
        auth_changes: Arc::new(tokio::sync::watch::channel(0).0),
        shutdown: shutdown.clone(),
        tracker: connections.clone(),
        node: core.node,
        cluster,
        tls: Arc::clone(&tls),
    });
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: cfg.server.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    tls.set_http_addr(addr);
    let https = bind_https(&cfg, &tls).await;
    announce(addr, &state, started.elapsed()).await;
    if let Some(interval) = systemd::watchdog_interval() {
        let health = Arc::clone(&core.journal_health);
        tasks.spawn(systemd::run_watchdog(
            interval,
            move || health.is_healthy(Duration::from_secs(10)),
            shutdown.clone(),
        ));
    }

    let listener_limits = listener_limits(&cfg);
    tasks.spawn(sweep_uploads(state.clone(), shutdown.clone()));
    tasks.spawn(scheduled_backups(state.clone(), shutdown.clone()));
    let gate = http::listener::Gate::new(listener_limits, Arc::clone(&state.listener_stats));
    // The listeners stay open until the pipeline has stopped, so `/healthz` can say why the
    // daemon is stopping; every other request is refused from the shutdown on (`http.rs`).
    let close_listener = CancellationToken::new();
    let router = http::router(state);
    let https_server = https.map(|(listener, config)| {
        tasks.spawn(Arc::clone(&tls).keep_current(shutdown.clone()));
        tokio::spawn(http::listener::serve(
            listener,
            router.clone(),
            gate.clone(),
            Some(config),
            close_listener.clone(),
        ))
    });
    let server = tokio::spawn(http::listener::serve(
        listener,
        router,
        gate,
        None,
        close_listener.clone(),
    ));
    shutdown.cancelled().await;
    announce_stopping(&core);

    // Wait for WebSocket tasks to finish their acks and close, then the pipeline drains in
    // order.
    connections.close();
    let grace = Duration::from_secs(config_rx.borrow().server.shutdown_grace_secs);
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections did not close within the grace period");
    }
    channels.stop().await;
    stop_cluster.cancel();
    cluster_tasks.close();
    cluster_tasks.wait().await;
    let stopped = core.stop().await;
    close_listener.cancel();
    tasks.close();
    tasks.wait().await;
    // Connections finish the requests they are in, within the grace period.
    if tokio::time::timeout(grace, server).await.is_err() {
        tracing::warn!("HTTP connections did not finish within the grace period");
    }
    if let Some(https) = https_server {
        if tokio::time::timeout(grace, https).await.is_err() {
            tracing::warn!("HTTPS connections did not finish within the grace period");
        }
    }
    stopped
}

/// The HTTPS listener and its TLS settings, when HTTPS is on and has a certificate. A port
/// that cannot be bound is logged and shown (`/api/v1/tls`), and HTTP goes on without it.
async fn bind_https(
    cfg: &Config,
    tls: &crate::tls::Service,
) -> Option<(tokio::net::TcpListener, Arc<rustls::ServerConfig>)> {
    let config = tls.server_config()?;
    let bound = match tokio::net::TcpListener::bind(cfg.tls.listen).await {
        Ok(listener) => listener.local_addr().map(|addr| (listener, addr)),
        Err(e) => Err(e),
    };
    match bound {
        Ok((listener, addr)) => {
            tls.set_https_addr(addr);
            tracing::info!(%addr, "HTTPS on {addr}");
            Some((listener, config))
        }
        Err(source) => {
            let e = crate::tls::TlsError::Bind {
                addr: cfg.tls.listen,
                source,
            };
            tracing::error!(error = %e, "HTTPS is off; HTTP goes on");
            tls.fail(e.to_string());
            None
        }
    }
}

/// The listener's limits: the configured connection cap, lowered to what the descriptor limit
/// allows.
fn listener_limits(cfg: &Config) -> http::listener::Limits {
    let limits = http::listener::Limits {
        max_connections: http::listener::Limits::effective_max_connections(
            cfg.server.max_connections,
            fd_limit(),
        ),
        max_connections_per_address: cfg.server.max_connections_per_address,
        header_read_timeout: Duration::from_secs(cfg.server.header_read_timeout_secs),
    };
    if limits.max_connections < cfg.server.max_connections {
        tracing::info!(
            max_connections = limits.max_connections,
            "connections capped below the descriptor limit"
        );
    }
    limits
}

/// Says why the daemon is stopping: to systemd (STOPPING, with the failure if there is one)
/// and to the log.
fn announce_stopping(core: &Core) {
    let failure = core
        .journal_health
        .failure()
        .or(core.store_failure.get().map(String::as_str))
        .map(str::to_string);
    systemd::notify_stopping(failure.as_deref());
    match &failure {
        Some(reason) => tracing::error!(
            message_id = crate::telemetry::message_id::STOPPING,
            reason,
            "stopping on failure: STOPPING, acknowledging nothing more, draining connections"
        ),
        None => tracing::info!(
            message_id = crate::telemetry::message_id::STOPPING,
            "shutdown requested: STOPPING, draining connections"
        ),
    }
}

async fn announce(addr: SocketAddr, state: &AppState, startup: Duration) {
    tracing::info!(
        message_id = crate::telemetry::message_id::READY,
        %addr,
        startup_ms = startup.as_millis() as u64,
        "listening on {addr}"
    );
    let agents = state
        .reads
        .run(crate::auth::list_agents)
        .await
        .map(|a| a.len())
        .unwrap_or(0);
    let host = if addr.ip().is_unspecified() {
        "<this-machine's-address>".to_string()
    } else {
        addr.ip().to_string()
    };
    tracing::info!(
        "agent API: http://{host}:{}/api/v1, visitor WebSocket: ws://{host}:{}/ws/visitor",
        addr.port(),
        addr.port()
    );
    if agents == 0 {
        tracing::info!(
            "no agent account yet: create the first with `kefud --config <your config> agent add NAME --admin --password-stdin`"
        );
    }
    systemd::notify_ready(&format!("listening on {addr}"));
}

fn spawn_thread(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .expect("invariant: the OS can start the daemon's three worker threads")
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop kefud with SIGKILL");
        return;
    };
    // Cancel safety: `Signal::recv` is cancel-safe.
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
