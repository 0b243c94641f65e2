//! Inbound acknowledgements: each message's PUBACK goes out, in arrival order, only once it is
//! durable; the backlog of PUBACKs handed to rumqttc but not yet written, and the `stalled`
//! state it implies (see the bridge's invariants in `mqtt.rs`).

use super::*;

/// Durable inbound messages whose PUBACK rumqttc has not written yet, on the live connection.
#[derive(Default)]
pub(super) struct AckBacklog {
    /// The live connection (0: none); the acknowledger hands over PUBACKs for it only.
    pub(super) connection: u64,
    /// Handed to rumqttc, not yet written, in order: when each became durable.
    pub(super) handed: VecDeque<Instant>,
    /// The next one, durable since then, waiting for room in rumqttc's request queue.
    pub(super) next: Option<Instant>,
}

impl AckBacklog {
    /// A new connection: nothing of the last one will be written.
    pub(super) fn connected(&mut self, connection: u64) {
        *self = AckBacklog {
            connection,
            ..AckBacklog::default()
        };
    }

    /// rumqttc wrote the oldest PUBACK handed to it.
    pub(super) fn written(&mut self) {
        self.handed.pop_front();
    }

    pub(super) fn len(&self) -> usize {
        self.handed.len() + usize::from(self.next.is_some())
    }

    /// How long the oldest durable, unacknowledged message has waited.
    pub(super) fn oldest_wait(&self, now: Instant) -> Option<Duration> {
        self.handed
            .front()
            .or(self.next.as_ref())
            .map(|since| now.saturating_duration_since(*since))
    }
}

/// The state the bridge reports: `stalled` instead of `connected` when the oldest durable
/// message without its PUBACK has waited more than [`STALL_AFTER`].
pub(super) fn reported_state(state: &'static str, oldest_wait: Option<Duration>) -> &'static str {
    match oldest_wait {
        Some(wait) if state == "connected" && wait > STALL_AFTER => "stalled",
        _ => state,
    }
}

/// An inbound message waiting for its PUBACK.
pub(super) struct AckItem {
    /// The connection it came on (an acknowledgement for an older connection goes nowhere:
    /// the broker sends the message again on the new one), and its number.
    pub(super) client: AsyncClient,
    pub(super) connection: u64,
    pub(super) publish: rumqttc::Publish,
    pub(super) outcome: Outcome,
}

pub(super) enum Outcome {
    /// Handed to the pipeline: acknowledged once durable.
    Stored(crate::channel::Pending),
    /// Never storable (malformed) or not stored by design (typing, read): acknowledged now.
    Done,
    /// Not stored for a reason that may pass (a store read failed): not acknowledged, and the
    /// connection is dropped so the broker sends it again.
    Retry(String),
}

pub(super) async fn acknowledge(
    mut items: mpsc::UnboundedReceiver<AckItem>,
    bridge: Arc<MqttBridge>,
) {
    while let Some(item) = items.recv().await {
        if bridge.broken_connection.load(Ordering::Relaxed) == item.connection {
            continue;
        }
        let failed = match item.outcome {
            Outcome::Stored(pending) => match pending.durable().await {
                Ok(_) => None,
                // Stopping: leave it (and everything after it) unacknowledged.
                Err(InboundError::Unavailable) => return,
                Err(e) => Some(e.to_string()),
            },
            Outcome::Done => None,
            Outcome::Retry(e) => Some(e),
        };
        if let Some(error) = failed {
            tracing::warn!(topic = %item.publish.topic, error, "mqtt: message not stored; it will come again");
            bridge
                .broken_connection
                .store(item.connection, Ordering::Relaxed);
            bridge.reconnect.notify_one();
            continue;
        }
        if !bridge
            .hand_over(&item.client, item.connection, &item.publish)
            .await
        {
            return;
        }
    }
}
