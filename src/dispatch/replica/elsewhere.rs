//! Cluster mode: the other boxes' agents in this box's scheduler, so that a conversation whose
//! home is this box goes to whoever has room on any box, by the same rule as here (the least
//! loaded agent of its team who is online).
//!
//! Each agent of another box gets a stand-in id here, with [`PROXY`] set (a box's own agent
//! ids are SQLite row ids, far below it), mirrored from the roster their box publishes
//! (presence, load, teams, capacity). The scheduler picks among all; a pick of a stand-in is a
//! conversation given to that box's agent (`holders.rs`), counted against their load on top
//! of what their box publishes for a few seconds (a roster published before their box took it
//! does not count it yet): a stand-in can be given more than their room only if their box
//! takes longer than that to publish.
//!
//! Invariant: stand-in ids never reach the journal or the store; they exist only in the
//! scheduler and here, and [`Decider::roster`] leaves them out.

use std::collections::HashMap;

use super::super::ports::{Journal, Snapshot};
use super::super::state::Now;
use super::super::{Decider, DispatchError};
use crate::cluster::register::AgentRef;
use crate::cluster::vector::NodeId;
use crate::cluster::wire::{Presence, RosterAgent};
use crate::model::{AgentId, ConversationId};
use crate::routing::scheduler::AgentSlot;

/// The bit that marks a stand-in id.
pub const PROXY: AgentId = 1 << 63;

/// How long a conversation given to another box's agent counts against their load on top of
/// what their box publishes (it publishes within about a second of taking it; until then a
/// roster may not count it yet).
const GIVEN_COUNTS_MS: i64 = 5_000;

/// The other boxes' agents known here, by stand-in id.
#[derive(Default)]
pub(in crate::dispatch) struct Elsewhere {
    ids: HashMap<AgentRef, AgentId>,
    agents: Vec<(AgentRef, String)>,
    /// Per stand-in, when (monotonic ms) it was last given conversations, recent ones only.
    given: HashMap<AgentId, Vec<i64>>,
}

impl Elsewhere {
    fn stand_in(&mut self, agent: AgentRef, name: &str) -> AgentId {
        if let Some(&id) = self.ids.get(&agent) {
            self.agents[(id & !PROXY) as usize].1 = name.to_string();
            return id;
        }
        let id = PROXY | self.agents.len() as u64;
        self.ids.insert(agent, id);
        self.agents.push((agent, name.to_string()));
        id
    }

    /// Conversations given to `id` within [`GIVEN_COUNTS_MS`] of `timer_ms` (older ones
    /// forgotten).
    fn recently_given(&mut self, id: AgentId, timer_ms: i64) -> u32 {
        let Some(times) = self.given.get_mut(&id) else {
            return 0;
        };
        times.retain(|t| timer_ms - t < GIVEN_COUNTS_MS);
        times.len() as u32
    }

    fn of(&self, id: AgentId) -> Option<&(AgentRef, String)> {
        (id & PROXY != 0)
            .then(|| self.agents.get((id & !PROXY) as usize))
            .flatten()
    }
}

fn replica_given(replica: Option<&mut super::Replica>, agent: AgentId, timer_ms: i64) {
    if let Some(r) = replica {
        r.elsewhere.given.entry(agent).or_default().push(timer_ms);
    }
}

pub(in crate::dispatch) fn is_stand_in(agent: AgentId) -> bool {
    agent & PROXY != 0
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// Another box published its roster (`online`: its link is up): its agents in the
    /// scheduler as it says; any of its agents it no longer lists can take nothing.
    pub(crate) fn peer_roster(
        &mut self,
        node: NodeId,
        agents: Vec<RosterAgent>,
        online: bool,
        now: Now,
    ) {
        let Some(replica) = self.replica.as_mut() else {
            return;
        };
        if node == replica.node {
            return;
        }
        let mut listed = Vec::with_capacity(agents.len());
        for a in agents {
            let id = replica
                .elsewhere
                .stand_in(AgentRef { node, agent: a.id }, &a.name);
            let mut slot = AgentSlot::new(a.teams, a.capacity, false);
            slot.connections = u32::from(online && a.presence != Presence::Offline);
            slot.away = a.presence == Presence::Away;
            // What their box counts, and what was given to them here since it may not yet.
            slot.open = a.open + replica.elsewhere.recently_given(id, now.timer_ms);
            self.scheduler.mirror(id, slot);
            listed.push(id);
        }
        let gone: Vec<AgentId> = replica
            .elsewhere
            .ids
            .iter()
            .filter(|(r, id)| r.node == node && !listed.contains(id))
            .map(|(_, id)| *id)
            .collect();
        for id in gone {
            self.scheduler
                .mirror(id, AgentSlot::new(Vec::new(), 0, true));
        }
    }

    /// The scheduler gave `conversation` to stand-in `agent`: it goes to that box's agent.
    pub(in crate::dispatch) fn give_to_stand_in(
        &mut self,
        conversation: ConversationId,
        agent: AgentId,
        now: Now,
    ) -> Result<(), DispatchError> {
        // Out of the queue first, whatever follows: the scheduler never picks it twice.
        self.scheduler.assigned(conversation, agent);
        let replica = self
            .replica
            .as_ref()
            .expect("invariant: stand-ins only in cluster mode");
        let Some((to, name)) = replica.elsewhere.of(agent).cloned() else {
            return Ok(());
        };
        self.scheduler.holding(agent, true);
        replica_given(self.replica.as_mut(), agent, now.timer_ms);
        self.give_elsewhere(conversation, to, name, None, now)?;
        Ok(())
    }
}
