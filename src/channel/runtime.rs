//! The running channels: the adapters the configuration enables, the route table between
//! them, one receiving task and one outbox runner per adapter.
//!
//! Started after the pipeline, stopped before it: an adapter stops taking messages while the
//! journal can still make the last ones durable. Stopping is bounded: adapters and outboxes
//! still running [`STOP_DEADLINE`] after being asked to stop are left behind (logged), so one
//! wedged channel cannot hold up the daemon's shutdown; whatever they did not acknowledge,
//! their far end sends again.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::mqtt::MqttBridge;
use super::outbox::{self, OutboxContext, RetryPolicy};
use super::routes::{RouteError, RouteTable};
use super::webhook::Webhook;
use super::wechat::Wechat;
use super::{Adapter, Inbound};
use crate::config::Config;
use crate::dispatch::Command;
use crate::model::Lsn;
use crate::store::pool::ReadPool;

/// How long [`Channels::stop`] waits for the adapters and outboxes.
pub const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// What the channels need from the daemon.
pub struct Pipeline {
    pub commands: mpsc::Sender<Command>,
    pub durable: watch::Receiver<Lsn>,
    pub applied: watch::Receiver<Lsn>,
    pub reads: ReadPool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Mqtt(#[from] super::mqtt::SetupError),
    #[error(transparent)]
    Routes(#[from] RouteError),
}

/// An adapter as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStatus {
    pub name: String,
    /// The channels it delivers replies for; empty: every channel no other adapter names.
    pub channels: Vec<String>,
    pub state: &'static str,
    pub detail: String,
    pub counters: serde_json::Map<String, serde_json::Value>,
}

pub struct Channels {
    adapters: Vec<Arc<dyn Adapter>>,
    routes: RouteTable,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Channels {
    /// Builds the adapters `cfg` enables, adds `extra` (an integrator's own), and starts them
    /// and their outboxes.
    ///
    /// # Errors
    /// [`StartError`] for an adapter that cannot be set up (a bad CA file) or conflicting
    /// routes.
    pub fn start(
        cfg: &Config,
        extra: Vec<Arc<dyn Adapter>>,
        pipeline: Pipeline,
    ) -> Result<Channels, StartError> {
        let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
        if cfg.mqtt.enabled {
            adapters.push(Arc::new(MqttBridge::new(&cfg.mqtt)?));
        }
        for webhook in &cfg.webhooks {
            adapters.push(Arc::new(Webhook::new(webhook)));
        }
        if cfg.wechat.enabled {
            adapters.push(Arc::new(Wechat::new(&cfg.wechat)));
        }
        adapters.extend(extra);
        let descriptions: Vec<_> = adapters.iter().map(|a| a.describe()).collect();
        let routes = RouteTable::new(&descriptions)?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let inbound = Inbound::new(
            pipeline.commands.clone(),
            pipeline.durable.clone(),
            cfg.limits.max_text_chars,
        );
        for (adapter, description) in adapters.iter().zip(&descriptions) {
            let own = inbound
                .clone()
                .restricted_to(routes.filter_for(&description.name));
            tasks.spawn(Arc::clone(adapter).start(own));
            tasks.spawn(outbox::run(
                Arc::clone(adapter),
                routes.filter_for(&description.name),
                RetryPolicy {
                    max_attempts: cfg.outbox.max_attempts,
                    first_delay: std::time::Duration::from_secs(cfg.outbox.first_retry_secs),
                    max_delay: std::time::Duration::from_secs(cfg.outbox.max_retry_secs),
                },
                OutboxContext {
                    reads: pipeline.reads.clone(),
                    applied: pipeline.applied.clone(),
                    commands: pipeline.commands.clone(),
                    stop: stop.clone(),
                },
            ));
            tracing::info!(adapter = %description.name, channels = ?description.channels, "channel adapter started");
        }
        Ok(Channels {
            adapters,
            routes,
            stop,
            tasks,
        })
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn status(&self) -> Vec<ChannelStatus> {
        self.adapters
            .iter()
            .map(|a| {
                let d = a.describe();
                let h = a.health();
                ChannelStatus {
                    name: d.name,
                    channels: d.channels,
                    state: h.state,
                    detail: h.detail,
                    counters: h
                        .counters
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.into()))
                        .collect(),
                }
            })
            .collect()
    }

    /// Tells the adapter of `to`'s channel that an agent is typing.
    pub fn typing(&self, to: &crate::model::Identity) {
        let Some(name) = self.routes.adapter_for(&to.channel) else {
            return;
        };
        if let Some(adapter) = self.adapters.iter().find(|a| a.describe().name == name) {
            adapter.typing(to);
        }
    }

    /// Stops every adapter and outbox and waits for them, at most [`STOP_DEADLINE`].
    pub async fn stop(&self) {
        for adapter in &self.adapters {
            adapter.stop();
        }
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_DEADLINE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                deadline_secs = STOP_DEADLINE.as_secs(),
                "channel adapters did not stop in time; shutting down without them (what they did not acknowledge is sent again)"
            );
        }
    }
}
