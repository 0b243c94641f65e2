//! The assignment scheduler: which online agent gets which waiting conversation. Pure logic,
//! owned by the dispatcher thread, so there is exactly one decider and two agents never get
//! the same conversation.
//!
//! Rules:
//! - A conversation handed to a person waits in one queue, oldest first.
//! - It goes to an online agent with spare capacity (open conversations < capacity) in the
//!   conversation's team, the one with the fewest open conversations; among equals, the one
//!   assigned longest ago (round-robin).
//! - A conversation with no team goes to any agent; so does one whose team no agent belongs
//!   to (a knowledge base naming a team nobody staffs must not strand customers).
//! - A conversation nobody can take now stays queued and later ones may still be assigned
//!   (another team's agent may be free); it is assigned the moment capacity frees up.
//! - An agent who goes offline or away keeps the conversations they hold and gets no new ones.

use std::collections::{BTreeSet, HashMap};

use crate::model::{AgentId, ConversationId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSlot {
    pub teams: Vec<String>,
    pub capacity: u32,
    pub disabled: bool,
    /// Open connections to the agent feed (the console); online while above zero.
    pub connections: u32,
    pub away: bool,
    /// Conversations the agent holds that are not resolved.
    pub open: u32,
    /// When the agent last got a conversation from the scheduler (a sequence number).
    pub last_assigned: u64,
}

impl AgentSlot {
    pub fn new(teams: Vec<String>, capacity: u32, disabled: bool) -> Self {
        AgentSlot {
            teams,
            capacity,
            disabled,
            connections: 0,
            away: false,
            open: 0,
            last_assigned: 0,
        }
    }

    pub fn is_online(&self) -> bool {
        self.connections > 0 && !self.away && !self.disabled
    }

    fn can_take(&self) -> bool {
        self.is_online() && self.open < self.capacity
    }
}

#[derive(Debug, Default)]
pub struct Scheduler {
    agents: HashMap<AgentId, AgentSlot>,
    queue: BTreeSet<(i64, ConversationId)>,
    teams: HashMap<ConversationId, String>,
    assignments: u64,
    /// Something changed that may allow an assignment (a conversation queued, an agent with
    /// new room); until then [`Scheduler::next_assignment`] has nothing new to find and is not run.
    changed: bool,
}

impl Scheduler {
    /// Adds an agent or updates its teams, capacity and disabled flag (presence and load kept).
    pub fn set_agent(&mut self, agent: AgentId, teams: Vec<String>, capacity: u32, disabled: bool) {
        let slot = self
            .agents
            .entry(agent)
            .or_insert_with(|| AgentSlot::new(Vec::new(), 0, false));
        slot.teams = teams;
        slot.capacity = capacity;
        slot.disabled = disabled;
        self.changed = true;
    }

    pub fn knows(&self, agent: AgentId) -> bool {
        self.agents.contains_key(&agent)
    }

    pub fn agent(&self, agent: AgentId) -> Option<&AgentSlot> {
        self.agents.get(&agent)
    }

    pub fn agents(&self) -> impl Iterator<Item = (AgentId, &AgentSlot)> {
        self.agents.iter().map(|(id, s)| (*id, s))
    }

    /// A feed connection opened (`+1`) or closed (`-1`).
    pub fn connection(&mut self, agent: AgentId, opened: bool) {
        if let Some(s) = self.agents.get_mut(&agent) {
            s.connections = if opened {
                s.connections + 1
            } else {
                s.connections.saturating_sub(1)
            };
            self.changed |= opened;
        }
    }

    pub fn set_away(&mut self, agent: AgentId, away: bool) {
        if let Some(s) = self.agents.get_mut(&agent) {
            s.away = away;
            self.changed |= !away;
        }
    }

    /// The agent now holds one more (`true`) or one fewer open conversation.
    pub fn holding(&mut self, agent: AgentId, more: bool) {
        if let Some(s) = self.agents.get_mut(&agent) {
            s.open = if more {
                s.open + 1
            } else {
                s.open.saturating_sub(1)
            };
            self.changed |= !more;
        }
    }

    pub fn enqueue(&mut self, conversation: ConversationId, team: String, since_ms: i64) {
        if self.teams.insert(conversation, team).is_none() {
            self.queue.insert((since_ms, conversation));
            self.changed = true;
        }
    }

    /// Takes a conversation out of the queue (assigned by hand, resolved, closed).
    pub fn dequeue(&mut self, conversation: ConversationId) {
        if self.teams.remove(&conversation).is_some() {
            self.queue.retain(|&(_, c)| c != conversation);
        }
    }

    pub fn queued(&self) -> impl Iterator<Item = ConversationId> + '_ {
        self.queue.iter().map(|&(_, c)| c)
    }

    /// The next assignment to make, if any: the oldest queued conversation someone can take,
    /// and who. The caller makes it (journals it) and reports it with [`Scheduler::assigned`].
    ///
    /// Cost: nothing unless something changed since it last found nothing; then one pass over
    /// the queue, each conversation checked against the agents who have room.
    pub fn next_assignment(&mut self) -> Option<(ConversationId, AgentId)> {
        if !self.changed {
            return None;
        }
        if self.queue.is_empty() || !self.agents.values().any(AgentSlot::can_take) {
            self.changed = false;
            return None;
        }
        for &(_, conversation) in &self.queue {
            let team = &self.teams[&conversation];
            let staffed = !team.is_empty()
                && self
                    .agents
                    .values()
                    .any(|a| !a.disabled && a.teams.iter().any(|t| t == team));
            let best = self
                .agents
                .iter()
                .filter(|(_, a)| a.can_take())
                .filter(|(_, a)| !staffed || a.teams.iter().any(|t| t == team))
                .min_by_key(|(id, a)| (a.open, a.last_assigned, **id));
            if let Some((&agent, _)) = best {
                return Some((conversation, agent));
            }
        }
        self.changed = false;
        None
    }

    /// Records that the scheduler gave `conversation` to `agent` (its load is counted by the
    /// caller through [`Scheduler::holding`], as for any assignment).
    pub fn assigned(&mut self, conversation: ConversationId, agent: AgentId) {
        self.dequeue(conversation);
        self.assignments += 1;
        if let Some(s) = self.agents.get_mut(&agent) {
            s.last_assigned = self.assignments;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(s: &mut Scheduler, agent: AgentId, teams: &[&str], capacity: u32) {
        s.set_agent(
            agent,
            teams.iter().map(|t| t.to_string()).collect(),
            capacity,
            false,
        );
        s.connection(agent, true);
    }

    /// Runs the scheduler to a fixed point, as the dispatcher does.
    fn drain(s: &mut Scheduler) -> Vec<(ConversationId, AgentId)> {
        let mut out = Vec::new();
        while let Some((c, a)) = s.next_assignment() {
            s.assigned(c, a);
            s.holding(a, true);
            out.push((c, a));
        }
        out
    }

    #[test]
    fn least_loaded_then_round_robin() {
        let mut s = Scheduler::default();
        online(&mut s, 1, &[], 5);
        online(&mut s, 2, &[], 5);
        s.holding(1, true);
        for c in 10..14 {
            s.enqueue(c, String::new(), c as i64);
        }
        // Agent 2 has fewer open; then they alternate.
        assert_eq!(drain(&mut s), [(10, 2), (11, 1), (12, 2), (13, 1)]);
    }

    #[test]
    fn capacity_bounds_and_the_queue_waits_oldest_first() {
        let mut s = Scheduler::default();
        online(&mut s, 1, &[], 1);
        s.enqueue(21, String::new(), 200);
        s.enqueue(20, String::new(), 100);
        s.enqueue(22, String::new(), 300);
        assert_eq!(drain(&mut s), [(20, 1)]);
        assert_eq!(s.queued().collect::<Vec<_>>(), [21, 22]);
        // The agent resolves one: the oldest waiting conversation is next.
        s.holding(1, false);
        assert_eq!(drain(&mut s), [(21, 1)]);
        // Raising capacity frees a slot too.
        s.set_agent(1, vec![], 3, false);
        assert_eq!(drain(&mut s), [(22, 1)]);
    }

    #[test]
    fn teams_route_and_an_unstaffed_team_falls_back_to_anyone() {
        let mut s = Scheduler::default();
        online(&mut s, 1, &["billing"], 5);
        online(&mut s, 2, &["after-sales"], 5);
        s.enqueue(30, "after-sales".into(), 1);
        s.enqueue(31, "billing".into(), 2);
        s.enqueue(32, "nobody-staffs-this".into(), 3);
        let got = drain(&mut s);
        assert_eq!(got[0], (30, 2));
        assert_eq!(got[1], (31, 1));
        assert_eq!(got[2].0, 32);
    }

    #[test]
    fn a_blocked_team_does_not_block_later_conversations() {
        let mut s = Scheduler::default();
        online(&mut s, 1, &["billing"], 1);
        s.set_agent(2, vec!["after-sales".into()], 5, false); // offline
        s.enqueue(40, "after-sales".into(), 1);
        s.enqueue(41, "billing".into(), 2);
        assert_eq!(drain(&mut s), [(41, 1)]);
        assert_eq!(s.queued().collect::<Vec<_>>(), [40]);
        s.connection(2, true);
        assert_eq!(drain(&mut s), [(40, 2)]);
    }

    #[test]
    fn an_agent_going_offline_keeps_their_conversations_and_gets_no_new_ones() {
        let mut s = Scheduler::default();
        online(&mut s, 1, &[], 5);
        online(&mut s, 2, &[], 5);
        s.enqueue(50, String::new(), 1);
        s.enqueue(51, String::new(), 2);
        assert_eq!(drain(&mut s).len(), 2);
        s.connection(1, false);
        assert!(!s.agent(1).unwrap().is_online());
        assert_eq!(s.agent(1).unwrap().open, 1);
        s.enqueue(52, String::new(), 3);
        s.enqueue(53, String::new(), 4);
        assert_eq!(drain(&mut s), [(52, 2), (53, 2)]);
        // Away counts as offline for new work; nobody online means everything waits.
        s.set_away(2, true);
        s.enqueue(54, String::new(), 5);
        assert_eq!(drain(&mut s), []);
        s.connection(1, true);
        assert_eq!(drain(&mut s), [(54, 1)]);
    }

    #[test]
    fn disabled_agents_and_dequeued_conversations_are_skipped() {
        let mut s = Scheduler::default();
        online(&mut s, 1, &[], 5);
        s.set_agent(1, vec![], 5, true);
        s.enqueue(60, String::new(), 1);
        assert_eq!(drain(&mut s), []);
        s.dequeue(60);
        s.set_agent(1, vec![], 5, false);
        assert_eq!(drain(&mut s), []);
    }
}
