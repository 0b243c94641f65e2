//! Channels: how customers' messages come in and replies go out, behind one small trait.
//!
//! An [`Adapter`] connects one messaging system (an MQTT broker, a webhook endpoint, WeChat,
//! an integrator's own IM) to kefud in five methods: it says who it is ([`Adapter::describe`]),
//! runs its receiving side with an [`Inbound`] handle into the pipeline ([`Adapter::start`]),
//! delivers one reply ([`Adapter::send`]), reports its [`Health`], and stops.
//!
//! Replies reach an adapter through the outbox ([`outbox`]): every agent or bot reply is
//! routed to one identity of the contact (the one the customer last wrote from, or the one
//! the agent picked); the store keeps a delivery row for each reply on a channel other than
//! the web widget, and the [`routes::RouteTable`] says which adapter delivers a channel's rows.
//! The web widget is the one channel outside the outbox: its sockets get replies from the
//! live fan-out and fetch what they missed with `after=N` (see `crate::fanout`).
//!
//! Invariants:
//! - An adapter acknowledges a customer's message to its own system only after
//!   [`Pending::durable`] resolved, i.e. after the journal's fsync.
//! - A reply is marked delivered (journaled) only after its channel confirmed it; until then
//!   it is pending in the store and is sent again after a restart (at least once; receivers
//!   deduplicate on `message_id`).

pub mod inbound;
pub mod mqtt;
pub mod outbox;
pub mod report;
pub mod routes;
pub mod runtime;
pub mod webhook;
pub mod wechat;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;

pub use crate::model::{Outbound, OutboundKind};
pub use inbound::{Inbound, InboundError, Pending};

use crate::model::Identity;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who an adapter is and what it can do.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    /// Its name in logs, the console and the API (`mqtt`, `webhook`).
    pub name: String,
    /// The channels whose replies it delivers; empty: every channel no other adapter names
    /// (at most one adapter may say so).
    pub channels: Vec<String>,
    /// Replies it may have in flight at once (sends the outbox runs concurrently).
    pub max_in_flight: usize,
    /// Whether it takes conversation events (opened, resolved) besides replies.
    pub events: bool,
}

/// An adapter's state as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `connected`, `connecting`, `disconnected` or `stopped`; `stalled` for a connected
    /// adapter whose acknowledgements have fallen behind what it stored (MQTT).
    pub state: &'static str,
    /// The last error, or what it is connected to.
    pub detail: String,
    /// Monotonic counters, by name (messages received, malformed, published, ...).
    pub counters: Vec<(&'static str, u64)>,
}

/// Why a reply was not delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (the far end is down, slow or busy).
    #[error("{0}")]
    Retry(String),
    /// The far end refused it for good (it goes to the dead letters at once).
    #[error("{0}")]
    Refused(String),
}

/// A channel adapter. See the module documentation.
pub trait Adapter: Send + Sync + 'static {
    fn describe(&self) -> Description;

    /// Runs the receiving side until [`Adapter::stop`]: customer messages go into `inbound`.
    fn start(self: Arc<Self>, inbound: Inbound) -> BoxFuture<'static, ()>;

    /// Delivers one reply; resolves when the channel confirmed it.
    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<(), SendError>>;

    fn health(&self) -> Health;

    /// Asks [`Adapter::start`] to return soon.
    fn stop(&self);

    /// An agent is typing to `to` (best effort, not stored). Only channels with typing
    /// indicators override it; the others have nothing to show.
    fn typing(&self, to: &Identity) {
        let _ = to;
    }
}
