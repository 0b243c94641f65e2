//! The dispatcher: turns commands into journaled operations, one at a time, on its own thread.
//!
//! Files: `command.rs` (what it is asked and answers), `messages.rs` (customer and agent
//! messages, routing), `status.rs` (transitions, idle timers, assignment), `links.rs`
//! (linking contacts), `memory.rs` (hydration, eviction, the queue's read-back); this file
//! holds the state, startup and the command loop.
//!
//! Ownership: this thread alone owns the live conversation state (which contact has which
//! open conversation, each conversation's status and assignee, the recent client ids used for
//! idempotency) and the LSN counter. Because one thread assigns LSNs and hands entries to the
//! journal in that order, the journal order *is* the order decisions were made in.
//!
//! State is hydrated lazily from the store the first time a contact or conversation is
//! touched, so startup does not scale with history. That is sound because the store has
//! applied the whole journal before the dispatcher starts, and everything since passed through
//! here.
//!
//! Memory does not grow with the number of contacts either: at most `cached_contacts` stay
//! hydrated; beyond that the least recently used are evicted, and hydrated again when they
//! come back. A contact is evicted only once the store has applied everything this thread
//! journaled up to its last use, which keeps the rule "what is not in memory, the store has
//! as it is" true, so hydration never reads a stale contact. The waiting queue keeps only a
//! window in memory too (see the scheduler), and start reads only that window and the idle
//! timers of resolved conversations.
//!
//! Invariants:
//! - Every status change goes through [`conversation::step`]; a refused one journals nothing.
//! - A command is answered with the LSN its caller must wait on (`durable >= lsn`) before it
//!   acknowledges anything; a duplicate `client_id` is answered with the first message's id
//!   and journals nothing.
//! - Commands arrive over a bounded channel and entries leave over one: a slow disk slows the
//!   senders, nothing is buffered without bound.
//!
//! Routing lives here too, because it must decide in the same order as everything else: each
//! customer message is classified against the knowledge base, and while no person holds the
//! conversation the bot answers it or hands it over ([`crate::routing::bot`]); conversations
//! handed over wait in the [`Scheduler`]'s queue, which runs after every command, so a
//! conversation is assigned the moment an agent has room. The knowledge base is rebuilt here
//! on every change and published for the API's reads.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{mpsc, watch};

use crate::conversation::{self, Event, Refused, Status};
use crate::fanout::{Ephemeral, FanoutHandle};
use crate::model::{
    AgentId, ClientId, ContactId, ConversationId, Identity, Lsn, MessageId, Sender,
};
use crate::op::{Entry, HandoffReason, KbEntry, MessageAdded, Op, StatusChanged};
use crate::routing::bot::{self, BotConfig, Decision};
use crate::routing::knowledge::KnowledgeBase;
use crate::routing::scheduler::{Scheduler, QUEUE_WINDOW};
use crate::routing::training::Trainer;
use crate::store::progress::Progress;
use crate::store::queries;
use crate::wire;

mod command;
mod links;
mod memory;
mod messages;
mod status;

pub use command::{
    Accepted, Command, DeliveryReport, DispatchError, Reply, StreamAccepted, StreamReply,
};

/// What the bot decided for a customer message, owned so the text can move on.
struct RoutePlan {
    classified: Option<(String, f32)>,
    action: Action,
}

enum Action {
    Answer(String),
    ToHuman(String, HandoffReason),
}

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
}

struct ContactState {
    identities: Arc<[Identity]>,
    current: Option<ConversationId>,
    recent: VecDeque<RecentClientId>,
    /// The identity the customer last wrote from, and that message's id: replies go there.
    last_via: Option<(Identity, MessageId)>,
    /// The last LSN journaled when this contact was last used: evictable once applied.
    last_lsn: Lsn,
    /// When it was last used (the position of its latest entry in `use_order`).
    stamp: u64,
}

/// A client id is unique per identity (the client that made it), so the ring remembers which
/// of the contact's identities sent it.
struct RecentClientId {
    /// Index into the contact's `identities`.
    from: u8,
    client_id: ClientId,
    message: MessageId,
}

/// A contact has at most this many identities (linking refuses more).
const MAX_IDENTITIES: usize = 32;

struct ConversationState {
    contact: ContactId,
    status: Status,
    assignee: Option<AgentId>,
    /// When a resolved conversation closes: the exact key of its entry in `idle_deadlines`
    /// (kept here because a config reload may change the timeout meanwhile).
    idle_deadline: Option<i64>,
    /// Handed to a person, for this team; the bot no longer answers.
    handoff_team: Option<String>,
}

pub struct Dispatcher {
    cfg: DispatchConfig,
    /// Read connection for hydration; owned by this thread.
    conn: Connection,
    identities: HashMap<Identity, ContactId>,
    contacts: HashMap<ContactId, ContactState>,
    conversations: HashMap<ConversationId, ConversationState>,
    /// Resolved conversations by the time they close.
    idle_deadlines: BTreeSet<(i64, ConversationId)>,
    next_lsn: Lsn,
    next_contact: ContactId,
    next_conversation: ConversationId,
    journal: mpsc::Sender<Entry>,
    kb: Arc<KnowledgeBase>,
    kb_published: watch::Sender<Arc<KnowledgeBase>>,
    /// Trains intent models off this thread for every knowledge base published.
    trainer: Trainer,
    scheduler: Scheduler,
    /// For typing indicators, which are not journaled.
    fanout: FanoutHandle,
    /// When each conversation's last customer-typing indicator went to the agents.
    typing_sent: HashMap<ConversationId, std::time::Instant>,
    /// Contacts linked into another since startup (the store may not have applied it yet).
    linked: HashMap<ContactId, ContactId>,
    /// How far the store has got (eviction and the queue's read-back wait for it).
    store: Arc<Progress>,
    /// Contacts used by the command being handled.
    touched: Vec<ContactId>,
    /// Contacts by last use, oldest first: (contact, stamp); an entry whose stamp is not the
    /// contact's current one is stale and skipped.
    use_order: VecDeque<(ContactId, u64)>,
    clock: u64,
    stats: Arc<DispatchStats>,
    /// The first LSN journaled since the wall clock was last anchored (start or a step).
    interval_from_lsn: Lsn,
}

/// What `/metrics` shows of the dispatcher's memory.
#[derive(Debug, Default)]
pub struct DispatchStats {
    /// Contacts hydrated now.
    pub contacts: AtomicU64,
    /// Waiting conversations held in the scheduler's windows now.
    pub queued_in_memory: AtomicU64,
}

/// Customer-typing indicators per conversation reach agents at most this often.
const TYPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl Dispatcher {
    /// Builds the dispatcher over a caught-up store; `last_lsn` is the journal's last record.
    ///
    /// # Errors
    /// [`DispatchError::Store`] if the store cannot be read.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: DispatchConfig,
        conn: Connection,
        last_lsn: Lsn,
        store: Arc<Progress>,
        journal: mpsc::Sender<Entry>,
        kb_published: watch::Sender<Arc<KnowledgeBase>>,
        fanout: FanoutHandle,
    ) -> Result<Self, DispatchError> {
        let (max_contact, max_conversation) = queries::max_ids(&conn)?;
        let resolved = queries::resolved_since(&conn)?;
        let kb = Arc::new(KnowledgeBase::new(queries::kb_entries(&conn)?));
        kb_published.send_replace(Arc::clone(&kb));
        let trainer = Trainer::spawn();
        trainer.submit(&kb);
        let mut scheduler = Scheduler::default();
        for a in queries::routing_agents(&conn)? {
            scheduler.set_agent(a.id, a.teams, a.capacity, a.disabled);
        }
        for (agent, open) in queries::open_by_assignee(&conn)? {
            for _ in 0..open {
                scheduler.holding(agent, true);
            }
        }
        let mut d = Dispatcher {
            cfg,
            conn,
            identities: HashMap::new(),
            contacts: HashMap::new(),
            conversations: HashMap::new(),
            idle_deadlines: BTreeSet::new(),
            next_lsn: last_lsn + 1,
            next_contact: max_contact + 1,
            next_conversation: max_conversation + 1,
            journal,
            kb,
            kb_published,
            trainer,
            scheduler,
            fanout,
            typing_sent: HashMap::new(),
            linked: HashMap::new(),
            store,
            touched: Vec::new(),
            use_order: VecDeque::new(),
            clock: 0,
            stats: Arc::default(),
            interval_from_lsn: last_lsn + 1,
        };
        // Timers only: a resolved conversation's contact is hydrated when it fires.
        for (conversation, resolved_at) in resolved {
            let deadline = crate::clock::to_timer(resolved_at) + d.cfg.resolved_idle_after_ms;
            d.idle_deadlines.insert((deadline, conversation));
        }
        // The oldest of each team's queue; the rest is read back as the window empties.
        for team in queries::queued_teams(&d.conn)? {
            d.refill_queue(&team, last_lsn)?;
        }
        Ok(d)
    }

    /// Counters the HTTP side reads.
    pub fn stats(&self) -> Arc<DispatchStats> {
        Arc::clone(&self.stats)
    }

    /// The thread body: runs until every command sender is dropped.
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.blocking_recv() {
            if matches!(cmd, Command::Stop) {
                break;
            }
            self.handle(cmd);
            self.assign_waiting();
            self.settle_contacts();
        }
        tracing::debug!(next_lsn = self.next_lsn, "dispatcher stopped");
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::CustomerMessage {
                identity,
                client_id,
                text,
                attachment,
                reply,
            } => {
                reply.send(self.customer_message(identity, client_id, text, attachment));
            }
            Command::AgentMessage {
                conversation,
                agent,
                text,
                via,
                reply,
            } => {
                reply.send(self.agent_message(conversation, agent, text, via));
            }
            Command::LinkContacts {
                keep,
                merged,
                reply,
            } => reply.send(self.link_contacts(keep, merged)),
            Command::Delivery(report) => {
                let now = crate::model::now_ms();
                let op = match report {
                    DeliveryReport::Delivered(messages) => Op::Delivered {
                        messages,
                        at_ms: now,
                    },
                    DeliveryReport::Failed {
                        message,
                        attempts,
                        dead,
                        error,
                    } => Op::DeliveryFailed {
                        message,
                        attempts,
                        dead,
                        error,
                        at_ms: now,
                    },
                };
                // Not journaled only if the daemon is stopping: the outbox sends again after
                // the restart (at least once).
                let _ = self.append(op, None);
            }
            Command::Assign {
                conversation,
                to,
                by,
                reply,
            } => {
                reply.send(self.transition(conversation, Event::Assign, Some(to), by));
            }
            Command::Resolve {
                conversation,
                by,
                reply,
            } => {
                reply.send(self.transition(conversation, Event::Resolve, None, by));
            }
            Command::Reopen {
                conversation,
                by,
                reply,
            } => {
                reply.send(self.transition(conversation, Event::Reopen, Some(by), by));
            }
            Command::Tick { timer_ms } => self.fire_idle_timeouts(timer_ms),
            Command::ClockStepped(step) => {
                let op = Op::ClockStepped {
                    offset_ms: step.offset_ms,
                    before_ms: step.before_ms,
                    correct_since_ms: step.correct_since_ms,
                    correct_from_lsn: self.interval_from_lsn,
                    at_ms: crate::model::now_ms(),
                };
                tracing::warn!(
                    offset_ms = step.offset_ms,
                    corrected = step.correct_since_ms.is_some(),
                    "the wall clock stepped; timers are unaffected, stored times follow"
                );
                if self.append(op, None).is_ok() {
                    self.interval_from_lsn = self.next_lsn;
                }
            }
            Command::AgentNote {
                conversation,
                agent,
                text,
                reply,
            } => reply.send(self.agent_note(conversation, agent, text)),
            Command::VisitorTyping { identity } => self.visitor_typing(&identity),
            Command::VisitorRead {
                identity,
                message_id,
            } => self.visitor_read(&identity, message_id),
            Command::AgentTyping {
                conversation,
                reply,
            } => {
                let _ = reply.send(self.agent_typing(conversation));
            }
            Command::SetResolvedIdleAfter { ms } => self.cfg.resolved_idle_after_ms = ms,
            Command::SetRouting { bot, auto_assign } => {
                self.cfg.bot = bot;
                self.cfg.auto_assign = auto_assign;
            }
            Command::KbChange { put, delete, reply } => reply.send(self.kb_change(put, delete)),
            Command::AgentFeed { agent, connected } => {
                if self.know_agent(agent) {
                    self.scheduler.connection(agent, connected);
                }
            }
            Command::AgentAway { agent, away } => {
                if self.know_agent(agent) {
                    self.scheduler.set_away(agent, away);
                }
            }
            Command::AgentChanged { agent } => match queries::routing_agent(&self.conn, agent) {
                Ok(Some(a)) => self
                    .scheduler
                    .set_agent(a.id, a.teams, a.capacity, a.disabled),
                Ok(None) => {}
                Err(e) => tracing::warn!(agent, error = %e, "cannot reload agent"),
            },
            Command::Roster { reply } => {
                let _ = reply.send(
                    self.scheduler
                        .agents()
                        .map(|(id, slot)| (id, slot.clone()))
                        .collect(),
                );
            }
            Command::Stop => {}
        }
    }

    /// Journals a knowledge-base change and publishes the rebuilt knowledge base.
    fn kb_change(
        &mut self,
        put: Vec<KbEntry>,
        delete: Vec<String>,
    ) -> Result<Accepted, DispatchError> {
        let now = crate::model::now_ms();
        let kb = self.kb.with_changes(&put, &delete);
        let mut lsn = 0;
        // Puts before deletes: a crash in the middle of a replacing import leaves the old
        // entries beside some new ones, never a knowledge base emptied and half refilled.
        for entry in put {
            lsn = self.append(Op::KbEntryPut { entry, at_ms: now }, None)?;
        }
        for intent in delete {
            if self.kb.get(&intent).is_some() {
                lsn = self.append(Op::KbEntryDeleted { intent, at_ms: now }, None)?;
            }
        }
        self.kb = Arc::new(kb);
        self.kb_published.send_replace(Arc::clone(&self.kb));
        self.trainer.submit(&self.kb);
        Ok(Accepted {
            lsn,
            conversation: 0,
            message_id: None,
        })
    }

    /// Whether the scheduler knows `agent`, loading it from the store if it was created since
    /// (by the CLI, say).
    fn know_agent(&mut self, agent: AgentId) -> bool {
        if self.scheduler.knows(agent) {
            return true;
        }
        match queries::routing_agent(&self.conn, agent) {
            Ok(Some(a)) => {
                self.scheduler
                    .set_agent(a.id, a.teams, a.capacity, a.disabled);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(agent, error = %e, "cannot load agent");
                false
            }
        }
    }

    fn visitor_typing(&mut self, identity: &Identity) {
        let Ok(Some(contact)) = self.lookup_identity(identity) else {
            return;
        };
        let Some(conversation) = self.contacts[&contact].current else {
            return;
        };
        // At most one indicator per conversation per interval reaches the agents, however
        // many sockets a visitor opens or how fast they send.
        let now = std::time::Instant::now();
        if self
            .typing_sent
            .get(&conversation)
            .is_some_and(|at| now.duration_since(*at) < TYPING_INTERVAL)
        {
            return;
        }
        if self.typing_sent.len() >= 10_000 {
            self.typing_sent
                .retain(|_, at| now.duration_since(*at) < TYPING_INTERVAL);
        }
        self.typing_sent.insert(conversation, now);
        let frame = wire::typing_for_agents(conversation, contact);
        self.fanout.notify(Ephemeral::Agents(frame.into()));
    }

    fn visitor_read(&mut self, identity: &Identity, message_id: MessageId) {
        let Ok(Some(contact)) = self.lookup_identity(identity) else {
            return;
        };
        let Some(conversation) = self.contacts[&contact].current else {
            return;
        };
        let frame = wire::read_for_agents(conversation, contact, message_id);
        self.fanout.notify(Ephemeral::Agents(frame.into()));
    }

    fn agent_typing(
        &mut self,
        conversation: ConversationId,
    ) -> Result<Option<Identity>, DispatchError> {
        self.hydrate_conversation(conversation)?;
        let contact = self.conversations[&conversation].contact;
        let audience = Arc::clone(&self.contacts[&contact].identities);
        self.fanout.notify(Ephemeral::Visitors(
            audience,
            wire::typing_for_visitor().into(),
        ));
        Ok(self.reply_route(contact))
    }

    fn append(&mut self, op: Op, audience: Option<Arc<[Identity]>>) -> Result<Lsn, DispatchError> {
        let lsn = self.next_lsn;
        self.journal
            .blocking_send(Entry { lsn, op, audience })
            .map_err(|_| DispatchError::Unavailable)?;
        self.next_lsn += 1;
        Ok(lsn)
    }
}
