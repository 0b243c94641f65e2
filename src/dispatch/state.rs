//! The dispatcher's state: what it holds in memory to decide (contacts, their open
//! conversations, client-id rings, idle deadlines, links made since start, the scheduler, the
//! knowledge base and the business hours), the two ports it decides through, and how it is
//! rebuilt at start.
//!
//! Invariants:
//! - `identities` maps every identity of every hydrated contact to it, and nothing else.
//! - A conversation is in `conversations` only while it is its (hydrated) contact's `current`.
//! - `idle_deadlines` holds exactly the `(idle_deadline, id)` of every resolved conversation
//!   whose timer is armed; a conversation evicted from memory keeps its entry, and is hydrated
//!   again when it fires.
//! - A contact in `linked` was linked into another since start: it is never hydrated again
//!   (the store may not have applied the link yet).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::ports::{Journal, Snapshot};
use super::replica::Replica;
use super::DispatchError;
use crate::conversation::Status;
use crate::model::{AgentId, ClientId, ContactId, ConversationId, Identity, Lsn, MessageId};
use crate::op::Op;
use crate::routing::bot::BotConfig;
use crate::routing::knowledge::KnowledgeBase;
use crate::routing::scheduler::Scheduler;

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// A resolved conversation closes (goes Idle) this long after it was resolved.
    pub resolved_idle_after_ms: i64,
    /// How many recent client ids per contact are remembered for idempotency.
    pub recent_client_ids: usize,
    pub bot: BotConfig,
    pub auto_assign: bool,
    /// Contacts kept hydrated at most; the least recently used beyond are evicted.
    pub cached_contacts: usize,
    /// Cluster mode: this box's node id and how far ahead another box's clock may drag ours.
    pub cluster: Option<ClusterRole>,
}

/// This box in a cluster (see `replica.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ClusterRole {
    pub node: crate::cluster::vector::NodeId,
    pub max_clock_ahead_ms: u64,
}

/// The time a command is decided at, read once by the thread: handlers never read a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    /// The wall clock (ms since the epoch), for records.
    pub wall_ms: i64,
    /// The monotonic clock on the wall clock's scale at start (`clock::timer_ms`), for timers.
    pub timer_ms: i64,
}

impl Now {
    pub(crate) fn read() -> Now {
        Now {
            wall_ms: crate::clock::now_ms(),
            timer_ms: crate::clock::timer_ms(),
        }
    }

    /// A wall time (as records carry it) on the timer scale.
    pub(crate) fn to_timer(self, wall_ms: i64) -> i64 {
        wall_ms - self.wall_ms + self.timer_ms
    }
}

pub(crate) struct ContactState {
    pub identities: Arc<[Identity]>,
    pub current: Option<ConversationId>,
    pub recent: VecDeque<RecentClientId>,
    /// The identity the customer last wrote from, and that message's id: replies go there.
    pub last_via: Option<(Identity, MessageId)>,
    /// The last LSN journaled when this contact was last used: evictable once applied.
    pub last_lsn: Lsn,
    /// When it was last used (the position of its latest entry in `use_order`).
    pub stamp: u64,
}

/// A client id is unique per identity (the client that made it), so the ring remembers which
/// of the contact's identities sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecentClientId {
    /// Index into the contact's `identities`.
    pub from: u8,
    pub client_id: ClientId,
    pub message: MessageId,
}

/// A contact has at most this many identities (linking refuses more).
pub(crate) const MAX_IDENTITIES: usize = 32;

/// A contact's conversation that is not closed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenConversation {
    pub contact: ContactId,
    pub status: Status,
    pub assignee: Option<AgentId>,
    /// When a resolved conversation closes: the exact key of its entry in `idle_deadlines`
    /// (kept here because a config reload may change the timeout meanwhile).
    pub idle_deadline: Option<i64>,
    /// Handed to a person, for this team; the bot no longer answers.
    pub handoff_team: Option<String>,
    /// When the bot last wrote here (wall ms), for the away message (`away.rs`); read from
    /// the store on hydration, set by every bot message since.
    pub bot_last_ms: Option<i64>,
}

/// The dispatcher's state and the ports it decides through. The handlers (one file per family:
/// messages, status, links, routing, signals, memory) are its methods; each takes the time it
/// decides at and returns what it decided.
pub(crate) struct Decider<J, S> {
    pub(super) cfg: DispatchConfig,
    pub(super) journal: J,
    pub(super) store: S,
    pub(super) identities: HashMap<Identity, ContactId>,
    pub(super) contacts: HashMap<ContactId, ContactState>,
    pub(super) conversations: HashMap<ConversationId, OpenConversation>,
    /// Resolved conversations by the time they close (timer ms).
    pub(super) idle_deadlines: BTreeSet<(i64, ConversationId)>,
    pub(super) next_contact: ContactId,
    pub(super) next_conversation: ConversationId,
    pub(super) kb: Arc<KnowledgeBase>,
    pub(super) scheduler: Scheduler,
    /// When each conversation's last customer-typing indicator went to the agents (timer ms).
    pub(super) typing_sent: HashMap<ConversationId, i64>,
    /// Contacts linked into another since startup (the store may not have applied it yet).
    pub(super) linked: HashMap<ContactId, ContactId>,
    /// Contacts used by the command being handled.
    pub(super) touched: Vec<ContactId>,
    /// Contacts by last use, oldest first: (contact, stamp); an entry whose stamp is not the
    /// contact's current one is stale and skipped.
    pub(super) use_order: VecDeque<(ContactId, u64)>,
    pub(super) use_clock: u64,
    /// The first LSN journaled since the wall clock was last anchored (start or a step).
    pub(super) interval_from_lsn: Lsn,
    /// The shop's business hours (`Command::SetHours` replaces them), and how a wall time
    /// reads on the shop's clock (the C library's local time; a test's own in unit tests).
    pub(super) hours: Arc<crate::hours::Hours>,
    pub(super) local_time: fn(i64) -> crate::hours::LocalTime,
    /// Cluster mode's state; `None` on a box alone.
    pub(super) replica: Option<Replica>,
    /// While set, every record appended is glued to the one after it: a contact or a
    /// conversation made for a message is durable together with that message or not at all
    /// (a kill -9 between them would leave an empty conversation behind). The handler clears
    /// it before the message itself; the thread clears it after every command.
    pub(super) bundling: bool,
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// Rebuilds what is kept in memory from a store that has applied the whole journal: the
    /// id counters, the knowledge base, the agents and their load, the idle timers of resolved
    /// conversations, and the oldest window of each team's queue. Contacts are hydrated later,
    /// when first used, so startup does not scale with history.
    ///
    /// # Errors
    /// [`DispatchError::Store`] if the store cannot be read.
    pub(crate) fn start(
        cfg: DispatchConfig,
        journal: J,
        store: S,
        now: Now,
    ) -> Result<Self, DispatchError> {
        let startup = store.startup()?;
        let mut scheduler = Scheduler::default();
        for a in startup.agents {
            scheduler.set_agent(a.id, a.teams, a.capacity, a.disabled);
        }
        for (agent, open) in startup.open_by_assignee {
            for _ in 0..open {
                scheduler.holding(agent, true);
            }
        }
        let first_lsn = journal.last() + 1;
        let replica = cfg
            .cluster
            .map(|role| Replica::start(role.node, role.max_clock_ahead_ms, startup.cluster));
        let mut d = Decider {
            journal,
            store,
            identities: HashMap::new(),
            contacts: HashMap::new(),
            conversations: HashMap::new(),
            idle_deadlines: BTreeSet::new(),
            next_contact: startup.max_contact + 1,
            next_conversation: startup.max_conversation + 1,
            kb: Arc::new(KnowledgeBase::new(startup.kb)),
            scheduler,
            typing_sent: HashMap::new(),
            linked: HashMap::new(),
            touched: Vec::new(),
            use_order: VecDeque::new(),
            use_clock: 0,
            interval_from_lsn: first_lsn,
            replica,
            bundling: false,
            hours: Arc::new(startup.hours),
            local_time: crate::hours::local_time,
            cfg,
        };
        for (conversation, resolved_at) in startup.resolved {
            let deadline = now.to_timer(resolved_at) + d.cfg.resolved_idle_after_ms;
            d.idle_deadlines.insert((deadline, conversation));
        }
        let applied = d.store.applied();
        for team in startup.queued_teams {
            d.refill_queue(&team, applied, now)?;
        }
        Ok(d)
    }

    /// The knowledge base as of the last change (the thread publishes it).
    pub(crate) fn kb(&self) -> &Arc<KnowledgeBase> {
        &self.kb
    }

    /// Contacts hydrated now.
    pub(crate) fn contacts_in_memory(&self) -> usize {
        self.contacts.len()
    }

    /// Waiting conversations held in the scheduler's windows now.
    pub(crate) fn queued_in_memory(&self) -> usize {
        self.scheduler.queued_len()
    }

    /// Cluster mode's entries held in memory now (0 alone).
    pub(crate) fn cluster_entries(&self) -> usize {
        self.replica.as_ref().map_or(0, Replica::entries)
    }

    /// Appends `op`; in cluster mode a record the other boxes take is followed by its
    /// stamped cluster operation (`replica.rs`).
    pub(super) fn append(
        &mut self,
        op: Op,
        audience: Option<Arc<[Identity]>>,
    ) -> Result<Lsn, DispatchError> {
        let bodies = self.cluster_bodies(&op)?;
        let at_ms = op_time(&op);
        // A record of a bundle, a record its stamp follows, or one made by another box's
        // operation (whose own Replicated record closes the group): durable together with
        // what follows.
        let glued = self.bundling
            || !bodies.is_empty()
            || self.replica.as_ref().is_some_and(|r| r.applying_remote());
        let lsn = if glued {
            self.journal.append_glued(op, audience)?
        } else {
            self.journal.append(op, audience)?
        };
        let last = bodies.len().saturating_sub(1);
        for (i, body) in bodies.into_iter().enumerate() {
            // A record with two stamps: the first is glued to the second.
            self.stamp(body, lsn, at_ms, i < last)?;
        }
        Ok(lsn)
    }
}

/// The time a record that carries one was decided at (the ones the cluster stamps all do).
fn op_time(op: &Op) -> i64 {
    match op {
        Op::MessageAdded(m) => m.at_ms,
        Op::StatusChanged(s) => s.at_ms,
        Op::ContactsLinked { at_ms, .. }
        | Op::ContactDetails { at_ms, .. }
        | Op::KbEntryPut { at_ms, .. }
        | Op::KbEntryDeleted { at_ms, .. }
        | Op::Delivered { at_ms, .. }
        | Op::DeliveryFailed { at_ms, .. }
        | Op::ConversationLabeled { at_ms, .. }
        | Op::ConversationRated { at_ms, .. } => *at_ms,
        _ => 0,
    }
}
