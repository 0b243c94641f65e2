//! The link's side of presence: whether each peer can be reached (this box's link up, the
//! peer's last will not fired, heard from within [`PEER_SILENT`]), what the dispatcher is told
//! of each peer's agents (told again each tick until it took it), and this box's own roster
//! published retained (`cluster::presence` decides when).

use std::sync::atomic::Ordering;
use std::time::Instant;

use rumqttc::QoS;
use tokio::sync::oneshot;

use super::{Link, Peer, PEER_SILENT};
use crate::cluster::vector::NodeId;
use crate::cluster::wire::Message;
use crate::dispatch::Command;

impl Link {
    /// Whether `peer` can be reached now: this box's link is up, the peer has not said
    /// goodbye (its last will), and it was heard from within [`PEER_SILENT`] (it publishes
    /// its vector every second; a bridge cut leaves its retained "online" standing).
    pub(super) fn reachable(&self, peer: &Peer) -> bool {
        self.connected.load(Ordering::Relaxed)
            && peer.online
            && crate::clock::now_ms() - peer.last_seen_ms < PEER_SILENT.as_millis() as i64
    }

    /// Tells the dispatcher a peer's agents and whether it can be reached (its scheduler
    /// counts them). A full command queue skips this once: each tick tells again whatever the
    /// dispatcher was not told yet.
    pub(super) fn tell_roster(&mut self, node: NodeId) {
        let Some(peer) = self.peers.get(&node) else {
            return;
        };
        let online = self.reachable(peer);
        let told = self.pipeline.commands.try_send(Command::PeerRoster {
            node,
            agents: peer.agents.clone(),
            online,
        });
        if told.is_ok() {
            if let Some(peer) = self.peers.get_mut(&node) {
                peer.told = Some(online);
            }
        }
    }

    /// Publishes this box's agents (retained) when they changed or are due again.
    pub(super) async fn publish_roster(&mut self) {
        // Never waits for room in a full command queue (the link must go on receiving): asked
        // again at the next tick.
        let (reply, answer) = oneshot::channel();
        if self
            .pipeline
            .commands
            .try_send(Command::Roster { reply })
            .is_err()
        {
            return;
        }
        let Ok(slots) = answer.await else { return };
        let now = Instant::now();
        if self.roster.names_wanted(&slots, now) {
            match self.pipeline.reads.run(crate::auth::list_agents).await {
                Ok(agents) => self.roster.set_names(
                    agents.into_iter().map(|a| (a.id, a.display_name)).collect(),
                    &slots,
                    now,
                ),
                Err(e) => tracing::warn!(error = %e, "cluster roster: cannot read agents"),
            }
        }
        let agents = self.roster.build(&slots);
        if !self.roster.due(&agents, now) {
            return;
        }
        let envelope = self.signer.seal(
            self.node,
            &Message::Roster {
                agents: agents.clone(),
            },
        );
        if self
            .client
            .try_publish(
                self.topics.of("agents", self.node),
                QoS::AtLeastOnce,
                true,
                envelope,
            )
            .is_ok()
        {
            self.roster.published(agents, now);
        }
    }

    /// Tells the dispatcher of every peer whose reachability it was not told yet.
    pub(super) fn tell_changed_peers(&mut self) {
        let changed: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.told != Some(self.reachable(p)))
            .map(|(node, _)| *node)
            .collect();
        for node in changed {
            self.tell_roster(node);
        }
    }
}
