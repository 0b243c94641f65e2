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
//!
//! Memory and time do not grow with the queue: each team's queue keeps at most
//! [`QUEUE_WINDOW`] of its oldest conversations in memory. Newer ones stay in the store (where
//! every queued conversation is, with its time) and the team is marked as having some there;
//! once its window runs low and the store has applied everything up to the spill, the
//! dispatcher reads the next ones back ([`Scheduler::refills_due`], [`Scheduler::refilled`]).
//! Finding an assignment looks only at each team's oldest conversation (every conversation of
//! a team can be taken by the same agents), and taking one out is logarithmic.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{AgentId, ConversationId, Lsn};

/// Queued conversations each team keeps in memory; the rest wait in the store.
pub const QUEUE_WINDOW: usize = 1000;

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

/// One team's waiting conversations ("" is no team).
#[derive(Debug, Default)]
struct TeamQueue {
    /// The oldest waiting conversations, by (queued at, id), at most [`QUEUE_WINDOW`].
    window: BTreeSet<(i64, ConversationId)>,
    /// Some conversations of this team wait only in the store; it has them once it has
    /// applied up to this LSN.
    spilled_through: Option<Lsn>,
}

#[derive(Debug, Default)]
pub struct Scheduler {
    agents: HashMap<AgentId, AgentSlot>,
    queues: BTreeMap<String, TeamQueue>,
    /// Where each conversation in a window is: its team and when it was queued.
    windowed: HashMap<ConversationId, (String, i64)>,
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

    /// Sets an agent whose presence and load another part of the daemon knows (cluster mode:
    /// an agent of another box, as its box published them), keeping when they last got one.
    pub fn mirror(&mut self, agent: AgentId, mut slot: AgentSlot) {
        if let Some(old) = self.agents.get(&agent) {
            slot.last_assigned = old.last_assigned;
        }
        self.agents.insert(agent, slot);
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

    /// Queues a conversation handed to a person. `lsn` is the dispatcher's last LSN: if the
    /// team's window is full, the conversation waits in the store, readable once the store
    /// has applied that far.
    pub fn enqueue(&mut self, conversation: ConversationId, team: String, since_ms: i64, lsn: Lsn) {
        if self.windowed.contains_key(&conversation) {
            return;
        }
        let queue = self.queues.entry(team.clone()).or_default();
        if queue.window.len() >= QUEUE_WINDOW {
            let newest = *queue
                .window
                .last()
                .expect("invariant: a full window is not empty");
            queue.spilled_through = Some(queue.spilled_through.map_or(lsn, |s| s.max(lsn)));
            if newest <= (since_ms, conversation) {
                return;
            }
            // Older than the window's newest: it takes that one's place.
            queue.window.remove(&newest);
            self.windowed.remove(&newest.1);
        }
        queue.window.insert((since_ms, conversation));
        self.windowed.insert(conversation, (team, since_ms));
        self.changed = true;
    }

    /// Takes a conversation out of the queue (assigned by hand, resolved, closed). One that
    /// waits only in the store needs nothing: it is read back only if it still waits there.
    pub fn dequeue(&mut self, conversation: ConversationId) {
        let Some((team, since)) = self.windowed.remove(&conversation) else {
            return;
        };
        if let Some(queue) = self.queues.get_mut(&team) {
            queue.window.remove(&(since, conversation));
            if queue.window.is_empty() && queue.spilled_through.is_none() {
                self.queues.remove(&team);
            }
        }
    }

    /// Conversations waiting in memory, oldest first per team.
    pub fn queued(&self) -> impl Iterator<Item = ConversationId> + '_ {
        self.queues
            .values()
            .flat_map(|q| q.window.iter().map(|&(_, c)| c))
    }

    /// How many conversations wait in memory.
    pub fn queued_len(&self) -> usize {
        self.windowed.len()
    }

    /// Teams whose window runs low while more of theirs wait in a store that has applied
    /// up to `applied`: the dispatcher reads their oldest from the store and hands them to
    /// [`Scheduler::refilled`].
    pub fn refills_due(&self, applied: Lsn) -> Vec<String> {
        self.queues
            .iter()
            .filter(|(_, q)| {
                q.window.len() < QUEUE_WINDOW / 2
                    && q.spilled_through.is_some_and(|lsn| lsn <= applied)
            })
            .map(|(team, _)| team.clone())
            .collect()
    }

    /// Whether some team's window runs low while more of theirs wait in the store.
    pub fn refill_wanted(&self) -> bool {
        self.queues
            .values()
            .any(|q| q.window.len() < QUEUE_WINDOW / 2 && q.spilled_through.is_some())
    }

    /// The oldest conversations of `team` still waiting in the store (at most
    /// [`QUEUE_WINDOW`], read when the store had applied `applied`), the ones already
    /// handled since filtered out by the caller. Fewer than the window: the store holds no
    /// more, unless some spilled after that read.
    pub fn refilled(
        &mut self,
        team: &str,
        oldest: Vec<(ConversationId, i64)>,
        applied: Lsn,
        complete: bool,
    ) {
        for (conversation, since) in oldest {
            self.enqueue(conversation, team.to_string(), since, applied);
        }
        if !complete {
            let queue = self.queues.entry(team.to_string()).or_default();
            queue.spilled_through = Some(queue.spilled_through.map_or(applied, |s| s.max(applied)));
        }
        if let Some(queue) = self.queues.get_mut(team) {
            let room_left = queue.window.len() < QUEUE_WINDOW;
            if complete && room_left && queue.spilled_through.is_some_and(|lsn| lsn <= applied) {
                queue.spilled_through = None;
            }
            if queue.window.is_empty() && queue.spilled_through.is_none() {
                self.queues.remove(team);
            }
        }
        self.changed = true;
    }

    /// The next assignment to make, if any: the oldest queued conversation someone can take,
    /// and who. The caller makes it (journals it) and reports it with [`Scheduler::assigned`].
    ///
    /// Cost: nothing unless something changed since it last found nothing; then, per team,
    /// its oldest conversation against the agents who have room.
    pub fn next_assignment(&mut self) -> Option<(ConversationId, AgentId)> {
        if !self.changed {
            return None;
        }
        if self.windowed.is_empty() || !self.agents.values().any(AgentSlot::can_take) {
            self.changed = false;
            return None;
        }
        let mut best: Option<((i64, ConversationId), AgentId)> = None;
        for (team, queue) in &self.queues {
            let Some(&head) = queue.window.first() else {
                continue;
            };
            if best.is_some_and(|(b, _)| b <= head) {
                continue;
            }
            let staffed = !team.is_empty()
                && self
                    .agents
                    .values()
                    .any(|a| !a.disabled && a.teams.iter().any(|t| t == team));
            let taker = self
                .agents
                .iter()
                .filter(|(_, a)| a.can_take())
                .filter(|(_, a)| !staffed || a.teams.iter().any(|t| t == team))
                .min_by_key(|(id, a)| (a.open, a.last_assigned, **id));
            if let Some((&agent, _)) = taker {
                best = Some((head, agent));
            }
        }
        match best {
            Some(((_, conversation), agent)) => Some((conversation, agent)),
            None => {
                self.changed = false;
                None
            }
        }
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
            s.enqueue(c, String::new(), c as i64, 0);
        }
        // Agent 2 has fewer open; then they alternate.
        assert_eq!(drain(&mut s), [(10, 2), (11, 1), (12, 2), (13, 1)]);
    }

    #[test]
    fn capacity_bounds_and_the_queue_waits_oldest_first() {
        let mut s = Scheduler::default();
        online(&mut s, 1, &[], 1);
        s.enqueue(21, String::new(), 200, 0);
        s.enqueue(20, String::new(), 100, 0);
        s.enqueue(22, String::new(), 300, 0);
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
        s.enqueue(30, "after-sales".into(), 1, 0);
        s.enqueue(31, "billing".into(), 2, 0);
        s.enqueue(32, "nobody-staffs-this".into(), 3, 0);
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
        s.enqueue(40, "after-sales".into(), 1, 0);
        s.enqueue(41, "billing".into(), 2, 0);
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
        s.enqueue(50, String::new(), 1, 0);
        s.enqueue(51, String::new(), 2, 0);
        assert_eq!(drain(&mut s).len(), 2);
        s.connection(1, false);
        assert!(!s.agent(1).unwrap().is_online());
        assert_eq!(s.agent(1).unwrap().open, 1);
        s.enqueue(52, String::new(), 3, 0);
        s.enqueue(53, String::new(), 4, 0);
        assert_eq!(drain(&mut s), [(52, 2), (53, 2)]);
        // Away counts as offline for new work; nobody online means everything waits.
        s.set_away(2, true);
        s.enqueue(54, String::new(), 5, 0);
        assert_eq!(drain(&mut s), []);
        s.connection(1, true);
        assert_eq!(drain(&mut s), [(54, 1)]);
    }

    #[test]
    fn a_long_queue_keeps_a_window_in_memory_and_reads_the_rest_back() {
        let mut s = Scheduler::default();
        let total = QUEUE_WINDOW + 300;
        for c in 0..total as u64 {
            s.enqueue(c, "t".into(), c as i64, 10 + c);
        }
        assert_eq!(s.queued().count(), QUEUE_WINDOW);
        // The store has not applied the spill yet: nothing to read back.
        assert!(s.refills_due(0).is_empty());
        online(&mut s, 1, &["t"], u32::MAX);
        let first = drain(&mut s);
        assert_eq!(first.len(), QUEUE_WINDOW);
        assert_eq!(first[0].0, 0, "oldest first");
        let applied = 10 + total as u64;
        assert_eq!(s.refills_due(applied), ["t"]);
        let rest: Vec<_> = (QUEUE_WINDOW as u64..total as u64)
            .map(|c| (c, c as i64))
            .collect();
        s.refilled("t", rest, applied, true);
        assert!(s.refills_due(applied).is_empty());
        let second = drain(&mut s);
        assert_eq!(second.len(), 300);
        assert_eq!(second[0].0, QUEUE_WINDOW as u64);
        assert_eq!(s.queued().count(), 0);
    }

    #[test]
    fn an_older_conversation_takes_the_place_of_the_newest_in_a_full_window() {
        let mut s = Scheduler::default();
        for c in 0..QUEUE_WINDOW as u64 {
            s.enqueue(c + 1, String::new(), (c + 1) as i64 * 10, 1);
        }
        s.enqueue(99_999, String::new(), 5, 2);
        assert_eq!(s.queued().next(), Some(99_999));
        assert_eq!(s.queued().count(), QUEUE_WINDOW);
        assert!(!s.queued().any(|c| c == QUEUE_WINDOW as u64));
    }

    #[test]
    fn disabled_agents_and_dequeued_conversations_are_skipped() {
        let mut s = Scheduler::default();
        online(&mut s, 1, &[], 5);
        s.set_agent(1, vec![], 5, true);
        s.enqueue(60, String::new(), 1, 0);
        assert_eq!(drain(&mut s), []);
        s.dequeue(60);
        s.set_agent(1, vec![], 5, false);
        assert_eq!(drain(&mut s), []);
    }
}
