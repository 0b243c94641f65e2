//! The cluster link's figures: counters (forged and malformed messages dropped, duplicates,
//! requests sent and served, ...) and the latest view of the cluster (this box's vector, the
//! peers heard from, what waits for a gap), for `/api/v1/cluster` and `/healthz`. The link
//! writes them; the HTTP side only reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use super::vector::VersionVector;

/// Counters and the latest view of the cluster, for `/api/v1/cluster` and `/healthz`.
#[derive(Default)]
pub struct ClusterStats {
    pub forged: AtomicU64,
    pub malformed: AtomicU64,
    pub duplicates: AtomicU64,
    pub applied: AtomicU64,
    pub published: AtomicU64,
    pub requests_sent: AtomicU64,
    pub requests_served: AtomicU64,
    pub dropped: AtomicU64,
    view: Mutex<View>,
}

/// What `/api/v1/cluster` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    pub node: String,
    pub cluster: String,
    pub connected: bool,
    /// This box has applied everything every peer it has heard from has applied.
    pub in_sync: bool,
    /// Operations held out of order, waiting for a gap to be filled.
    pub waiting: usize,
    /// How far this box has applied each origin (16-hex-digit node ids).
    pub applied: VersionVector,
    pub peers: Vec<PeerView>,
    /// The largest clock difference seen to a peer, in ms (positive: the peer is ahead).
    pub largest_skew_ms: i64,
    pub counters: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub node: String,
    pub online: bool,
    pub last_seen_ms: i64,
    /// Per origin, how many operations this peer has applied that this box has not.
    pub behind_peer: BTreeMap<String, u64>,
    pub skew_ms: i64,
    /// Its agents as it last published them (shown offline while the box is).
    pub agents: Vec<super::wire::RosterAgent>,
}

impl ClusterStats {
    pub fn view(&self) -> View {
        let mut view = self.lock().clone();
        for (name, counter) in [
            ("forged", &self.forged),
            ("malformed", &self.malformed),
            ("duplicates", &self.duplicates),
            ("applied", &self.applied),
            ("published", &self.published),
            ("requests_sent", &self.requests_sent),
            ("requests_served", &self.requests_served),
            ("dropped", &self.dropped),
        ] {
            view.counters.insert(name, counter.load(Ordering::Relaxed));
        }
        view
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, View> {
        self.view
            .lock()
            .expect("invariant: the view's lock is never poisoned")
    }
}
