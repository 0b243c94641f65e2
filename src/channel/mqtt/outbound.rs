//! Outbound: the bridge's own record of publishes not yet PUBACKed, in their original order, so
//! everything is published again after a reconnect (see the bridge's invariants in `mqtt.rs`).

use super::*;

/// A reply on its way: what to publish again after a reconnect, and whom to tell.
pub(super) struct Unacked {
    pub(super) seq: u64,
    pub(super) topic: String,
    pub(super) payload: Vec<u8>,
    pub(super) done: oneshot::Sender<()>,
}

#[derive(Default)]
pub(super) struct Tracker {
    pub(super) next_seq: u64,
    /// Published on the current connection, waiting for their packet id, in order.
    pub(super) requested: VecDeque<Unacked>,
    /// By packet id: sent, waiting for the PUBACK.
    pub(super) in_flight: HashMap<u16, Unacked>,
    /// Waiting for a connection.
    pub(super) unsent: Vec<Unacked>,
}

impl Tracker {
    /// Everything not acknowledged, in its original order.
    pub(super) fn take_all(&mut self) -> Vec<Unacked> {
        let mut all: Vec<Unacked> = self
            .in_flight
            .drain()
            .map(|(_, u)| u)
            .chain(self.requested.drain(..))
            .chain(self.unsent.drain(..))
            .collect();
        all.sort_by_key(|u| u.seq);
        all
    }
}
