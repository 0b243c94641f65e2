//! Cluster mode: several kefud boxes, one inbox, through MQTT brokers bridged to one another.
//!
//! Each box keeps working alone; what one box journals, the others come to hold too. The
//! journal is the replication log: every message, note, resolve, reopen, assignment, contact
//! link and edit, knowledge-base write and delivery report a box originates is stamped with a dot (this node, a dense per-node seq) and a hybrid-logical-clock time and
//! journaled in global terms (`dispatch/replica.rs`); the link publishes those after fsync and
//! applies the other boxes' in each origin's order, asking for anything that went missing.
//!
//! Files: `node.rs` (this box's identity), `hlc.rs` (the clock), `vector.rs` (dots, vectors,
//! in-order delivery), `wire/` (the operations' global form and the signed envelopes),
//! `register.rs` (who holds a conversation: a multi-value register), `kb_lww.rs` and
//! `outcome.rs` (the merge rules of knowledge-base entries and of delivery outcomes),
//! `presence.rs` (this box's agents as published to the others), `catchup.rs` (what to ask
//! for and whom, pure), `topics.rs`, `stats.rs` (the link's figures and view), `link.rs` (the
//! MQTT connection and the task that converges), `fault.rs` (test-only crash points, debug
//! builds only).

pub mod catchup;
pub mod fault;
pub mod hlc;
pub mod kb_lww;
pub mod link;
pub mod node;
pub mod outcome;
pub mod presence;
pub mod register;
pub mod stats;
mod topics;
pub mod vector;
pub mod wire;

use std::sync::Arc;

use crate::config::Config;

/// The MQTT connection options for the link: the broker `[mqtt]` names, a client id of this
/// node's own (several boxes may share one broker).
///
/// # Errors
/// The `[mqtt]` CA file cannot be read.
pub fn mqtt_options(
    cfg: &Config,
    node: vector::NodeId,
) -> Result<rumqttc::MqttOptions, crate::channel::mqtt::SetupError> {
    let m = &cfg.mqtt;
    let mut options = rumqttc::MqttOptions::new(
        format!("kefud-cluster-{}", node::display(node)),
        m.host.clone(),
        m.port,
    );
    options
        .set_keep_alive(std::time::Duration::from_secs(m.keep_alive_secs))
        .set_clean_session(false)
        .set_max_packet_size(4 << 20, 4 << 20);
    if !m.username.is_empty() {
        options.set_credentials(m.username.clone(), m.password.expose().clone());
    }
    if !m.ca_file.is_empty() {
        options.set_transport(rumqttc::Transport::tls_with_config(
            crate::channel::mqtt::tls_config(&m.ca_file)?,
        ));
    }
    Ok(options)
}

/// Starts the link in cluster mode (nothing otherwise): reads how far the store has applied
/// each origin, then connects. Returns the link's figures for the API.
///
/// # Errors
/// The store cannot be read, or the `[mqtt]` CA file cannot.
pub async fn start(
    cfg: &Config,
    node: vector::NodeId,
    pipeline: link::Pipeline,
    stop: tokio_util::sync::CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<Arc<stats::ClusterStats>, String> {
    let stored = pipeline
        .reads
        .run(crate::store::queries::cluster_startup)
        .await
        .map_err(|e: crate::store::Error| e.to_string())?;
    let mut applied = vector::VersionVector::default();
    for (origin, seq) in stored.applied {
        applied.advance(origin, seq);
    }
    let options = mqtt_options(cfg, node).map_err(|e| e.to_string())?;
    if cfg.cluster.weak_secret() {
        tracing::warn!(
            advised = crate::config::cluster::ADVISED_SECRET_CHARS,
            "cluster.secret is short: anyone who guesses it can write into every box's inbox"
        );
    }
    let stats = Arc::new(stats::ClusterStats::default());
    link::spawn(
        node,
        &cfg.cluster.name,
        cfg.cluster.secret.expose(),
        options,
        applied,
        pipeline,
        Arc::clone(&stats),
        stop,
        tasks,
    );
    tracing::info!(
        node = %node::display(node),
        cluster = %cfg.cluster.name,
        broker = %format!("{}:{}", cfg.mqtt.host, cfg.mqtt.port),
        "cluster mode: sharing conversations with the cluster's other boxes"
    );
    Ok(stats)
}
