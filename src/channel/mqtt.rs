//! The MQTT bridge (rumqttc): customers' messages from `PREFIX/in/{channel}/{contact_id}`
//! (`{"client_id","text"}`), replies to `PREFIX/out/{channel}/{contact_id}`
//! (`{"message_id","sender","text",...}`), both at QoS 1 over a persistent session
//! (`clean_session = false`), so the broker keeps what arrives while kefud is away.
//!
//! Besides messages, `{"type":"typing"}` and `{"type":"read","message_id":N}` on the inbound
//! topic tell agents the customer is typing or has seen the replies up to N (not stored); an
//! agent typing is published to `PREFIX/typing/{channel}/{contact_id}` at QoS 0.
//!
//! Invariants:
//! - Inbound: acknowledgements are manual. Each message is handed to the pipeline in arrival
//!   order and its PUBACK goes out, in that same order, only once it is durable; many share
//!   one fsync. A message that can never be stored (not JSON, no `client_id`, too long) is
//!   logged, counted and acknowledged, so the broker does not send it forever. While kefud is
//!   stopping nothing more is acknowledged: the broker sends it again after the restart, and
//!   the `client_id` makes the second copy a no-op.
//! - The event loop never waits for the acknowledger, and the acknowledger never awaits
//!   rumqttc: PUBACKs go into rumqttc's request queue, which only the event loop's `poll()`
//!   drains (and only between reads of the network, never while its own publishes fill the
//!   in-flight window), so each waiting on the other wedged the bridge under a burst (issue
//!   finding 10). The event loop hands messages on without blocking; the acknowledger offers
//!   each PUBACK with `try_ack` and, when the queue is full, waits for the event loop to take
//!   one. What bounds the messages held is the broker's in-flight window for kefud and the
//!   pipeline's own backpressure (`submit` waits for the dispatcher), not a queue between the
//!   two tasks.
//! - The bridge reports itself `stalled` (still connected) when a durable message has waited
//!   more than [`STALL_AFTER`] for its PUBACK to be written.
//! - Outbound: this module, not rumqttc, is the record of unacknowledged publishes. Each
//!   connection gets a fresh client and event loop; on every (re)connect everything not yet
//!   PUBACKed is published again in its original order, so a broker restart, with or without
//!   its session, loses nothing (receivers deduplicate on `message_id`).
//! - Packet ids are matched to publishes by order: rumqttc assigns them as it takes requests,
//!   first in first out, and reports each with `Outgoing::Publish(pkid)`.
//! - Reconnects back off exponentially, from half a second up to 30 s.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS, Transport};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::report::StateLine;
use super::{Adapter, BoxFuture, Description, Health, Inbound, InboundError, Outbound, SendError};
use crate::config::Mqtt as MqttConfig;
use crate::model::Identity;

mod acks;
mod inbound;
mod outbound;

use acks::{acknowledge, reported_state, AckBacklog, AckItem, Outcome};
use outbound::{Tracker, Unacked};

pub use inbound::{parse_inbound, Received};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// rumqttc's request queue, beyond the replies in flight: room for PUBACKs handed over and
/// not yet written.
const REQUEST_QUEUE: usize = 4096;
/// A durable message whose PUBACK has not been written after this long means the bridge is
/// stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

pub struct MqttBridge {
    options: MqttOptions,
    prefix: String,
    channels: Vec<String>,
    max_in_flight: usize,
    max_packet_bytes: usize,
    /// The current connection's client; `None` while (re)connecting.
    client: Mutex<Option<AsyncClient>>,
    /// Serialises publishing, so the tracker's order is the order rumqttc takes requests in.
    publishing: tokio::sync::Mutex<()>,
    tracker: Mutex<Tracker>,
    status: StateLine,
    counters: Counters,
    stop: CancellationToken,
    /// Asked by the acknowledger: drop this connection (a message must come again).
    reconnect: tokio::sync::Notify,
    /// The connection whose remaining messages are not acknowledged (0: none).
    broken_connection: AtomicU64,
    /// Durable messages whose PUBACK is not written yet.
    backlog: Mutex<AckBacklog>,
    /// Signalled by the event loop when rumqttc took a PUBACK from its request queue (there
    /// is room again) or the connection ended.
    acks_taken: tokio::sync::Notify,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    acknowledged: AtomicU64,
    malformed: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    reconnects: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("mqtt.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
}

impl MqttBridge {
    /// # Errors
    /// [`SetupError`] when the CA file cannot be read or holds no certificate.
    pub fn new(cfg: &MqttConfig) -> Result<Self, SetupError> {
        let mut options = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
        options
            .set_keep_alive(Duration::from_secs(cfg.keep_alive_secs))
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_inflight(cfg.max_in_flight)
            .set_max_packet_size(cfg.max_packet_bytes, cfg.max_packet_bytes);
        if !cfg.username.is_empty() {
            options.set_credentials(cfg.username.clone(), cfg.password.expose().clone());
        }
        if !cfg.ca_file.is_empty() {
            options.set_transport(Transport::tls_with_config(tls_config(&cfg.ca_file)?));
        }
        Ok(MqttBridge {
            options,
            prefix: cfg.topic_prefix.clone(),
            channels: cfg.channels.clone(),
            max_in_flight: usize::from(cfg.max_in_flight),
            max_packet_bytes: cfg.max_packet_bytes,
            client: Mutex::new(None),
            publishing: tokio::sync::Mutex::new(()),
            tracker: Mutex::new(Tracker::default()),
            status: StateLine::new("connecting", String::new()),
            counters: Counters::default(),
            stop: CancellationToken::new(),
            reconnect: tokio::sync::Notify::new(),
            broken_connection: AtomicU64::new(0),
            backlog: Mutex::new(AckBacklog::default()),
            acks_taken: tokio::sync::Notify::new(),
        })
    }

    async fn run(self: Arc<Self>, inbound: Inbound) {
        // Unbounded on purpose: the event loop must never wait for the acknowledger (see the
        // module's invariants).
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let acker = tokio::spawn(acknowledge(ack_rx, Arc::clone(&self)));
        let mut backoff = FIRST_BACKOFF;
        let mut connection = 0u64;
        let broker = format!(
            "{}:{}",
            self.options.broker_address().0,
            self.options.broker_address().1
        );
        while !self.stop.is_cancelled() {
            self.status.set("connecting", broker.clone());
            connection += 1;
            let (client, mut events) =
                AsyncClient::new(self.options.clone(), self.max_in_flight + REQUEST_QUEUE);
            self.backlog_lock().connected(connection);
            let error = loop {
                // Cancel safety: a cancelled poll drops this connection, which is what
                // stopping means; everything unacknowledged is in the tracker.
                let event = tokio::select! {
                    _ = self.stop.cancelled() => break None,
                    _ = self.reconnect.notified() => {
                        break Some("a message could not be stored; reconnecting so the broker sends it again".to_string());
                    }
                    event = events.poll() => event,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = FIRST_BACKOFF;
                        self.connected(&client).await;
                        self.status.set("connected", broker.clone());
                        tracing::info!(broker = %broker, "mqtt: connected");
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if !self
                            .received(publish, (&client, connection), &inbound, &ack_tx)
                            .await
                        {
                            break None;
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => self.acked(ack.pkid),
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => self.assigned(pkid),
                    Ok(Event::Outgoing(Outgoing::PubAck(_))) => {
                        self.backlog_lock().written();
                        self.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                        self.acks_taken.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => break Some(e.to_string()),
                }
            };
            *self.client.lock().expect("invariant: never poisoned") = None;
            drop((client, events));
            // After the drop: a PUBACK offered to this connection from now on fails, so none is
            // recorded for it after this.
            self.backlog_lock().connected(0);
            self.acks_taken.notify_one();
            let Some(error) = error else { break };
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            self.status.set("disconnected", error.clone());
            tracing::warn!(broker = %broker, error = %error, retry_in_ms = backoff.as_millis() as u64, "mqtt: connection lost");
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        drop(ack_tx);
        let _ = acker.await;
        self.status.set("stopped", String::new());
    }

    /// A new connection: subscribe (the session may be new) and publish again everything the
    /// broker has not acknowledged, in order, before any newer reply.
    async fn connected(&self, client: &AsyncClient) {
        let topic = format!("{}/in/+/+", self.prefix);
        if let Err(e) = client.try_subscribe(topic, QoS::AtLeastOnce) {
            tracing::error!(error = %e, "mqtt: cannot subscribe");
        }
        let _order = self.publishing.lock().await;
        let mut tracker = self.tracker.lock().expect("invariant: never poisoned");
        for unacked in tracker.take_all() {
            // The request channel holds every in-flight reply and more, so this never fails
            // on a fresh connection; if it does, the reply waits for the next one.
            match client.try_publish(
                &unacked.topic,
                QoS::AtLeastOnce,
                false,
                unacked.payload.clone(),
            ) {
                Ok(()) => tracker.requested.push_back(unacked),
                Err(_) => tracker.unsent.push(unacked),
            }
        }
        *self.client.lock().expect("invariant: never poisoned") = Some(client.clone());
    }

    /// An inbound message: into the pipeline, then to the acknowledger in arrival order.
    /// Returns false when kefud is stopping (nothing more is taken or acknowledged).
    async fn received(
        &self,
        publish: rumqttc::Publish,
        (client, connection): (&AsyncClient, u64),
        inbound: &Inbound,
        acks: &mpsc::UnboundedSender<AckItem>,
    ) -> bool {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let outcome = match parse_inbound(&self.prefix, &publish) {
            Ok((channel, contact, Received::Typing)) => {
                inbound.typing(channel, contact);
                Outcome::Done
            }
            Ok((channel, contact, Received::Read(message_id))) => {
                inbound.read(channel, contact, message_id);
                Outcome::Done
            }
            Ok((channel, contact, Received::Message { client_id, text })) => {
                match inbound.submit(channel, contact, &client_id, text).await {
                    Ok(pending) => Outcome::Stored(pending),
                    Err(InboundError::Unavailable) => return false,
                    Err(InboundError::Failed(e)) => Outcome::Retry(e),
                    Err(e @ InboundError::Invalid { .. }) => {
                        self.malformed(&publish.topic, &e.to_string());
                        Outcome::Done
                    }
                }
            }
            Err(e) => {
                self.malformed(&publish.topic, &e);
                Outcome::Done
            }
        };
        // Only the topic and packet id are needed from here on.
        let publish = rumqttc::Publish {
            payload: Default::default(),
            ..publish
        };
        acks.send(AckItem {
            client: client.clone(),
            connection,
            publish,
            outcome,
        })
        .is_ok()
    }

    fn backlog_lock(&self) -> std::sync::MutexGuard<'_, AckBacklog> {
        self.backlog.lock().expect("invariant: never poisoned")
    }

    /// Offers the PUBACK of `publish` (which came on `connection`) to rumqttc; while its
    /// request queue is full, waits for the event loop to take one (never the other way
    /// round). Returns false when kefud is stopping.
    async fn hand_over(
        &self,
        client: &AsyncClient,
        connection: u64,
        publish: &rumqttc::Publish,
    ) -> bool {
        let durable = Instant::now();
        loop {
            {
                let mut backlog = self.backlog_lock();
                if backlog.connection != connection {
                    // That connection is gone: the broker sends the message again.
                    backlog.next = None;
                    return true;
                }
                if client.try_ack(publish).is_ok() {
                    backlog.next = None;
                    backlog.handed.push_back(durable);
                    return true;
                }
                // Full (or the connection is ending, which `connection` shows next time).
                backlog.next = Some(durable);
            }
            // Cancel safety: both are notification futures.
            tokio::select! {
                _ = self.stop.cancelled() => return false,
                _ = self.acks_taken.notified() => {}
            }
        }
    }

    fn malformed(&self, topic: &str, error: &str) {
        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            topic,
            error,
            "mqtt: malformed message acknowledged and dropped"
        );
    }

    fn assigned(&self, pkid: u16) {
        if pkid == 0 {
            // QoS 0 (a typing indicator): no packet id, nothing to track.
            return;
        }
        let mut tracker = self.tracker.lock().expect("invariant: never poisoned");
        if let Some(unacked) = tracker.requested.pop_front() {
            tracker.in_flight.insert(pkid, unacked);
        }
    }

    fn acked(&self, pkid: u16) {
        let unacked = self
            .tracker
            .lock()
            .expect("invariant: never poisoned")
            .in_flight
            .remove(&pkid);
        if let Some(unacked) = unacked {
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            let _ = unacked.done.send(());
        }
    }
}

/// Acknowledges inbound messages in arrival order, each once it is durable. A message that
/// could not be stored stops the acknowledgements of its connection (MQTT wants them in
/// order) and drops the connection: the broker sends it, and those after it, again.
pub(crate) fn tls_config(ca_file: &str) -> Result<rumqttc::TlsConfiguration, SetupError> {
    let error = |message: String| SetupError::CaFile {
        path: ca_file.to_string(),
        message,
    };
    let pem = std::fs::read(ca_file).map_err(|e| error(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| error(e.to_string()))?;
        roots.add(cert).map_err(|e| error(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(error("holds no PEM certificate".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| error(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(rumqttc::TlsConfiguration::Rustls(Arc::new(config)))
}

impl Adapter for MqttBridge {
    fn describe(&self) -> Description {
        Description {
            name: "mqtt".into(),
            channels: self.channels.clone(),
            max_in_flight: self.max_in_flight,
            events: false,
        }
    }

    fn start(self: Arc<Self>, inbound: Inbound) -> BoxFuture<'static, ()> {
        Box::pin(self.run(inbound))
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let topic = format!(
                "{}/out/{}/{}",
                self.prefix, message.to.channel, message.to.external_id
            );
            let payload = serde_json::to_vec(&serde_json::json!({
                "message_id": message.id,
                "conversation_id": message.conversation_id,
                "sender": message.sender,
                "text": message.text,
                "created_at": message.created_at,
            }))
            .expect("invariant: JSON values serialise");
            // Larger than the connection carries: it would break it on every reconnect.
            if payload.len() + topic.len() + 16 > self.max_packet_bytes {
                return Err(SendError::Refused(format!(
                    "{} bytes is more than mqtt.max_packet_bytes",
                    payload.len() + topic.len()
                )));
            }
            let (done, acked) = oneshot::channel();
            {
                let _order = self.publishing.lock().await;
                let client = self
                    .client
                    .lock()
                    .expect("invariant: never poisoned")
                    .clone();
                let request = (topic.clone(), payload.clone());
                {
                    let mut tracker = self.tracker.lock().expect("invariant: never poisoned");
                    let seq = tracker.next_seq;
                    tracker.next_seq += 1;
                    let unacked = Unacked {
                        seq,
                        topic,
                        payload,
                        done,
                    };
                    // Recorded before it is handed over: its packet id may be assigned at once.
                    match client {
                        Some(_) => tracker.requested.push_back(unacked),
                        None => tracker.unsent.push(unacked),
                    }
                }
                if let Some(client) = client {
                    // Fails only when this connection's event loop is gone; the reply is
                    // still recorded and goes out on the next connection.
                    let _ = client
                        .publish(request.0, QoS::AtLeastOnce, false, request.1)
                        .await;
                }
            }
            self.counters.published.fetch_add(1, Ordering::Relaxed);
            acked
                .await
                .map_err(|_| SendError::Retry("the MQTT bridge stopped".into()))
        })
    }

    fn health(&self) -> Health {
        let (state, mut detail) = self.status.get();
        let (waiting, oldest_wait) = {
            let backlog = self.backlog_lock();
            (backlog.len() as u64, backlog.oldest_wait(Instant::now()))
        };
        let reported = reported_state(state, oldest_wait);
        if reported != state {
            detail = format!(
                "{waiting} durable messages not acknowledged to the broker, the oldest for {} s",
                oldest_wait.unwrap_or_default().as_secs()
            );
        }
        let state = reported;
        let c = &self.counters;
        let unacked = {
            let t = self.tracker.lock().expect("invariant: never poisoned");
            (t.requested.len() + t.in_flight.len() + t.unsent.len()) as u64
        };
        Health {
            state,
            detail,
            counters: vec![
                ("received", c.received.load(Ordering::Relaxed)),
                ("acknowledged", c.acknowledged.load(Ordering::Relaxed)),
                ("malformed", c.malformed.load(Ordering::Relaxed)),
                ("published", c.published.load(Ordering::Relaxed)),
                ("delivered", c.delivered.load(Ordering::Relaxed)),
                ("unacknowledged_replies", unacked),
                ("awaiting_puback", waiting),
                ("reconnects", c.reconnects.load(Ordering::Relaxed)),
            ],
        }
    }

    fn stop(&self) {
        self.stop.cancel();
    }

    /// `PREFIX/typing/{channel}/{contact_id}` with `{"type":"typing","sender":"agent"}`, QoS 0
    /// (worth nothing late; dropped while disconnected).
    fn typing(&self, to: &Identity) {
        let client = self
            .client
            .lock()
            .expect("invariant: never poisoned")
            .clone();
        if let Some(client) = client {
            let topic = format!("{}/typing/{}/{}", self.prefix, to.channel, to.external_id);
            let _ = client.try_publish(
                topic,
                QoS::AtMostOnce,
                false,
                r#"{"type":"typing","sender":"agent"}"#,
            );
        }
    }
}

#[cfg(test)]
mod tests;
